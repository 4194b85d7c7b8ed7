//! The one-time administrator setup.

use ender_core::account::{AccountError, Email, FullName, Password, TokenError};
use ender_core::setup;
use ender_core::testing::test_db;

fn args(n: usize) -> (Email, Password, FullName) {
    (
        Email::parse(&format!("admin{n}@example.org")).unwrap(),
        Password::parse("admin password 1", "password").unwrap(),
        FullName::parse("Admin").unwrap(),
    )
}

#[tokio::test]
async fn concurrent_setups_create_exactly_one_administrator() {
    let db = test_db().await;
    let token = setup::issue_token_if_needed(&db.pool).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let pool = db.pool.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let (e, p, f) = args(n);
            setup::complete(&pool, &token, &e, &p, &f).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(user) => {
                assert!(user.is_admin);
                ok += 1;
            }
            Err(AccountError::Token(TokenError::Used | TokenError::Invalid)) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(ok, 1);
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_admin")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(admins, 1);
    assert!(setup::issue_token_if_needed(&db.pool).await.unwrap().is_none());
}

#[tokio::test]
async fn setup_tokens_are_checked() {
    let db = test_db().await;
    let (e, p, f) = args(0);
    assert!(matches!(
        setup::complete(&db.pool, "forged", &e, &p, &f).await,
        Err(AccountError::Token(TokenError::Invalid))
    ));
    let token = setup::issue_token_if_needed(&db.pool).await.unwrap().unwrap();
    sqlx::query("UPDATE setup_tokens SET expires_at = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        setup::check_token(&db.pool, &token).await,
        Err(AccountError::Token(TokenError::Expired))
    ));
    assert!(matches!(
        setup::complete(&db.pool, &token, &e, &p, &f).await,
        Err(AccountError::Token(TokenError::Expired))
    ));
}
