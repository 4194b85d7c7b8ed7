//! Account rules against real PostgreSQL.

use ender_core::account::{self, AccountError, Email, FullName, Password, TokenError};
use ender_core::session;
use ender_core::testing::test_db;
use sqlx::PgPool;

const PW: &str = "correct horse battery";

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn password(s: &str) -> Password {
    Password::parse(s, "password").unwrap()
}

async fn sign_up(pool: &PgPool, address: &str, verify: bool) -> account::SignedUp {
    account::sign_up(
        pool,
        &email(address),
        &password(PW),
        &FullName::parse("A").unwrap(),
        verify,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sign_up_stores_an_argon2id_hash_and_a_hashed_token() {
    let db = test_db().await;
    let created = sign_up(&db.pool, "a@example.org", true).await;
    assert!(!created.user.is_verified());
    let token = created.verify_token.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(PW));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM email_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes());
    assert_eq!(stored, ender_core::crypto::token_digest(&token));
}

#[tokio::test]
async fn emails_are_unique_whatever_their_case() {
    let db = test_db().await;
    sign_up(&db.pool, "Case@Example.org", false).await;
    let again = account::sign_up(
        &db.pool,
        &email("case@example.ORG"),
        &password(PW),
        &FullName::default(),
        false,
    )
    .await;
    assert!(matches!(again, Err(AccountError::EmailTaken)));
}

#[tokio::test]
async fn authentication_needs_the_right_password_and_a_verified_email() {
    let db = test_db().await;
    sign_up(&db.pool, "v@example.org", true).await;
    let wrong = account::authenticate(&db.pool, "v@example.org", "nope nope nope", true).await;
    assert!(matches!(wrong, Err(AccountError::InvalidCredentials)));
    let unknown = account::authenticate(&db.pool, "x@example.org", PW, true).await;
    assert!(matches!(unknown, Err(AccountError::InvalidCredentials)));
    let unverified = account::authenticate(&db.pool, "v@example.org", PW, true).await;
    assert!(matches!(unverified, Err(AccountError::EmailNotVerified)));
    assert!(
        account::authenticate(&db.pool, " V@example.org ", PW, false)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn verification_tokens_work_once_and_not_after_expiry() {
    let db = test_db().await;
    let token = sign_up(&db.pool, "t@example.org", true)
        .await
        .verify_token
        .unwrap();
    let user = account::verify_email(&db.pool, &token).await.unwrap();
    assert!(user.is_verified());
    assert!(matches!(
        account::verify_email(&db.pool, &token).await,
        Err(AccountError::Token(TokenError::Used))
    ));
    assert!(matches!(
        account::verify_email(&db.pool, "nope").await,
        Err(AccountError::Token(TokenError::Invalid))
    ));

    let token = sign_up(&db.pool, "late@example.org", true)
        .await
        .verify_token
        .unwrap();
    sqlx::query("UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        account::verify_email(&db.pool, &token).await,
        Err(AccountError::Token(TokenError::Expired))
    ));
}

#[tokio::test]
async fn a_reset_token_cannot_verify_an_email_and_vice_versa() {
    let db = test_db().await;
    let verify = sign_up(&db.pool, "p@example.org", true)
        .await
        .verify_token
        .unwrap();
    assert!(matches!(
        account::reset_password(&db.pool, &verify, &password("another password")).await,
        Err(AccountError::Token(TokenError::Invalid))
    ));
    let (_, reset) = account::request_password_reset(&db.pool, "p@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        account::verify_email(&db.pool, &reset).await,
        Err(AccountError::Token(TokenError::Invalid))
    ));
}

#[tokio::test]
async fn a_new_reset_link_retires_the_old_one_and_resetting_ends_sessions() {
    let db = test_db().await;
    let user = sign_up(&db.pool, "r@example.org", true).await.user;
    let (_, first) = account::request_password_reset(&db.pool, "r@example.org")
        .await
        .unwrap()
        .unwrap();
    let (_, second) = account::request_password_reset(&db.pool, "r@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        account::check_reset_token(&db.pool, &first).await,
        Err(AccountError::Token(TokenError::Used))
    ));
    let mut conn = db.pool.acquire().await.unwrap();
    session::repo::save(
        &mut conn,
        "s1",
        &serde_json::json!({}),
        chrono::Utc::now() + chrono::Duration::hours(1),
        Some(user.id),
    )
    .await
    .unwrap();
    let user = account::reset_password(&db.pool, &second, &password("brand new password"))
        .await
        .unwrap();
    assert!(user.is_verified(), "the link proved the address");
    assert_eq!(
        session::repo::count_for_user(&mut conn, user.id).await.unwrap(),
        0
    );
    assert!(
        account::authenticate(&db.pool, "r@example.org", "brand new password", true)
            .await
            .is_ok()
    );
    assert!(
        account::request_password_reset(&db.pool, "ghost@example.org")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_keeps_only_this_session() {
    let db = test_db().await;
    let user = sign_up(&db.pool, "c@example.org", false).await.user;
    let mut conn = db.pool.acquire().await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    for id in ["mine", "other"] {
        session::repo::save(&mut conn, id, &serde_json::json!({}), later, Some(user.id))
            .await
            .unwrap();
    }
    let wrong = account::change_password(
        &db.pool,
        user.id,
        "wrong",
        &password("new password 1"),
        Some("mine"),
    )
    .await;
    assert!(matches!(wrong, Err(AccountError::WrongPassword)));
    assert_eq!(
        session::repo::count_for_user(&mut conn, user.id).await.unwrap(),
        2
    );
    account::change_password(&db.pool, user.id, PW, &password("new password 1"), Some("mine"))
        .await
        .unwrap();
    assert_eq!(
        session::repo::count_for_user(&mut conn, user.id).await.unwrap(),
        1
    );
    assert!(session::repo::load(&mut conn, "mine").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_an_account_takes_its_rows_with_it() {
    let db = test_db().await;
    let user = sign_up(&db.pool, "d@example.org", true).await.user;
    let keep = sign_up(&db.pool, "k@example.org", true).await.user;
    let mut conn = db.pool.acquire().await.unwrap();
    session::repo::save(
        &mut conn,
        "s",
        &serde_json::json!({}),
        chrono::Utc::now() + chrono::Duration::hours(1),
        Some(user.id),
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO oauth_identities (provider, subject, user_id) VALUES ('github', '1', $1)")
        .bind(user.id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        account::delete_account(&db.pool, user.id, "wrong").await,
        Err(AccountError::WrongPassword)
    ));
    account::delete_account(&db.pool, user.id, PW).await.unwrap();
    assert!(account::find(&db.pool, user.id).await.unwrap().is_none());
    assert!(account::find(&db.pool, keep.id).await.unwrap().is_some());
    for table in ["sessions", "oauth_identities"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM email_tokens WHERE user_id <> $1")
        .bind(keep.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
}

#[tokio::test]
async fn a_session_of_a_deleted_user_is_not_revived_by_a_late_save() {
    let db = test_db().await;
    let user = sign_up(&db.pool, "z@example.org", false).await.user;
    account::delete_account(&db.pool, user.id, PW).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    session::repo::save(
        &mut conn,
        "late",
        &serde_json::json!({}),
        chrono::Utc::now() + chrono::Duration::hours(1),
        Some(user.id),
    )
    .await
    .unwrap();
    assert!(session::repo::load(&mut conn, "late").await.unwrap().is_none());
}

#[tokio::test]
async fn oauth_links_verified_emails_only_and_creates_accounts_otherwise() {
    let db = test_db().await;
    let existing = sign_up(&db.pool, "o@example.org", true).await.user;
    let refused = account::oauth_sign_in(&db.pool, "google", "g1", "o@example.org", false, "", true).await;
    assert!(matches!(refused, Err(AccountError::UnverifiedProviderEmail)));
    let linked = account::oauth_sign_in(&db.pool, "google", "g1", "O@example.org", true, "", true)
        .await
        .unwrap();
    assert_eq!(linked.id, existing.id);
    assert!(linked.is_verified());
    // Once linked, the identity signs in even if the provider email changed.
    let again = account::oauth_sign_in(&db.pool, "google", "g1", "changed@example.org", false, "", true)
        .await
        .unwrap();
    assert_eq!(again.id, existing.id);
    let fresh = account::oauth_sign_in(
        &db.pool,
        "github",
        "77",
        "new@example.org",
        true,
        "New Person",
        true,
    )
    .await
    .unwrap();
    assert_ne!(fresh.id, existing.id);
    assert!(fresh.is_verified() && !fresh.has_password && !fresh.is_admin);
    assert_eq!(fresh.full_name, "New Person");
}

#[tokio::test]
async fn linking_an_unverified_account_takes_it_over_in_one_transaction() {
    let db = test_db().await;
    let signed_up = sign_up(&db.pool, "t@example.org", true).await;
    let user = signed_up.user;
    let (_, reset) = account::request_password_reset(&db.pool, "t@example.org")
        .await
        .unwrap()
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    session::repo::save(
        &mut conn,
        "squatter",
        &serde_json::json!({}),
        chrono::Utc::now() + chrono::Duration::hours(1),
        Some(user.id),
    )
    .await
    .unwrap();

    let linked = account::oauth_sign_in(&db.pool, "google", "g-t", "t@example.org", true, "", true)
        .await
        .unwrap();
    assert_eq!(linked.id, user.id);
    assert!(linked.is_verified() && !linked.has_password);
    assert!(matches!(
        account::authenticate(&db.pool, "t@example.org", PW, false).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert_eq!(
        session::repo::count_for_user(&mut conn, user.id).await.unwrap(),
        0
    );
    assert!(matches!(
        account::check_reset_token(&db.pool, &reset).await,
        Err(AccountError::Token(TokenError::Used))
    ));
    assert!(matches!(
        account::verify_email(&db.pool, &signed_up.verify_token.unwrap()).await,
        Err(AccountError::Token(TokenError::Used))
    ));

    // A verified account keeps its password and sessions when a provider is linked.
    let owner = sign_up(&db.pool, "kept@example.org", false).await.user;
    session::repo::save(
        &mut conn,
        "owner",
        &serde_json::json!({}),
        chrono::Utc::now() + chrono::Duration::hours(1),
        Some(owner.id),
    )
    .await
    .unwrap();
    let linked = account::oauth_sign_in(&db.pool, "github", "9", "kept@example.org", true, "", true)
        .await
        .unwrap();
    assert!(linked.has_password);
    assert_eq!(
        session::repo::count_for_user(&mut conn, owner.id).await.unwrap(),
        1
    );
    assert!(
        account::authenticate(&db.pool, "kept@example.org", PW, true)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn admins_are_made_only_by_the_admin_command() {
    let db = test_db().await;
    let user = sign_up(&db.pool, "m@example.org", true).await.user;
    assert!(!user.is_admin);
    let (promoted, created) = account::promote_or_create_admin(&db.pool, &email("M@example.org"), None)
        .await
        .unwrap();
    assert!(!created && promoted.is_admin && promoted.is_verified());
    let (fresh, created) = account::promote_or_create_admin(
        &db.pool,
        &email("boss@example.org"),
        Some(&password("boss password 1")),
    )
    .await
    .unwrap();
    assert!(created && fresh.is_admin);
    assert!(
        account::authenticate(&db.pool, "boss@example.org", "boss password 1", true)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn forged_reset_and_setup_tokens_are_refused_before_any_hashing() {
    let db = test_db().await;
    sign_up(&db.pool, "h@example.org", false).await;
    ender_core::setup::issue_token_if_needed(&db.pool).await.unwrap();
    // With every hashing permit taken, a path that hashed first would wait here for ever;
    // the timeout only turns such a hang into a failure.
    let held = ender_core::crypto::hold_all_hash_permits().await;
    let answers = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let reset = account::reset_password(&db.pool, "forged", &password("new password 123")).await;
        let setup = ender_core::setup::complete(
            &db.pool,
            "forged",
            &email("root@example.org"),
            &password("root password 1"),
            &FullName::default(),
        )
        .await;
        (reset, setup)
    })
    .await
    .expect("a forged token was hashed for before it was checked");
    drop(held);
    assert!(matches!(answers.0, Err(AccountError::Token(TokenError::Invalid))));
    assert!(matches!(answers.1, Err(AccountError::Token(TokenError::Invalid))));
}
