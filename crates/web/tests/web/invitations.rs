//! Sign-up by invitation (`ENDER_SIGNUP=invite`): the invitations page, the mailed link,
//! accepting it once, withdrawing it, the per-user cap, and other users' invitations.

use reqwest::StatusCode;

use crate::helpers::*;

const PW: &str = "correct horse battery";

async fn invite_only() -> TestApp {
    TestApp::spawn_with(Options {
        extra_args: vec!["--signup".into(), "invite".into()],
        ..Default::default()
    })
    .await
}

async fn users(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// Invites `email` as the signed-in user and returns the link's path and query.
async fn invite(app: &TestApp, email: &str) -> String {
    let before = app.mails().len();
    let res = app
        .post_form(
            "/settings/invitations",
            "/settings/invitations",
            &[("email", email)],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let mails = app.wait_for_mails(before + 1).await;
    let mail = mails.last().unwrap();
    assert!(mail.contains(&format!("To: {email}")), "{mail}");
    link_in(mail, &format!("http://{}", app.addr))
}

#[tokio::test]
async fn without_an_invitation_the_sign_up_page_says_it_is_by_invitation() {
    let app = invite_only().await;
    let page = app.get("/signup").await.text().await.unwrap();
    assert!(select_text(&page, "#signup-invite-only")[0].contains("by invitation"));
    assert!(!has(&page, "#signup-form"));
    let res = app
        .post_form(
            "/login",
            "/signup",
            &[("email", "new@example.org"), ("password", PW), ("full_name", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(users(&app).await, 0);
    assert!(app.mails().is_empty());
}

#[tokio::test]
async fn an_invited_address_gets_a_verified_account_once() {
    let app = invite_only().await;
    app.signed_in_user("host@example.org", PW).await;
    let link = invite(&app, "Guest@Example.org").await;
    assert!(link.starts_with("/signup?invite="), "{link}");
    let listed = app.get("/settings/invitations").await.text().await.unwrap();
    assert!(select_text(&listed, "#invitations")[0].contains("Guest@Example.org"));
    assert!(select_text(&listed, "#invitations")[0].contains("Pending"));
    // The inviter's page never shows the link.
    assert!(!listed.contains(&link["/signup?invite=".len()..]));

    let guest = app.new_client();
    let form = guest
        .get(app.url(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(has(&form, "#signup-form"));
    assert_eq!(
        select_attr(&form, "#invited-email", "value").as_deref(),
        Some("Guest@Example.org")
    );
    // A password that is too short re-renders the form, keeping the invitation.
    let token = link["/signup?invite=".len()..].to_owned();
    let res = post_form_with(
        &guest,
        &app,
        &link,
        "/signup",
        &[("invite", &token), ("full_name", "Guest"), ("password", "short")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(has(&page, "[data-field=password]"));
    assert_eq!(
        select_attr(&page, "input[name=invite]", "value").as_deref(),
        Some(token.as_str())
    );

    // An `email` field posted beside the invitation is ignored: the account gets the
    // invited address.
    let res = post_form_with(
        &guest,
        &app,
        &link,
        "/signup",
        &[
            ("invite", &token),
            ("email", "someone-else@example.org"),
            ("full_name", "Guest"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let (email, verified): (String, bool) =
        sqlx::query_as("SELECT email, email_verified_at IS NOT NULL FROM users WHERE full_name = 'Guest'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((email.as_str(), verified), ("Guest@Example.org", true));
    assert_eq!(
        guest.get(app.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // The link works once.
    let again = app.new_client();
    let res = again.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&res.text().await.unwrap(), "#token-error")[0].contains("already been used"));
    let res = post_form_with(
        &again,
        &app,
        "/login",
        "/signup",
        &[("invite", &token), ("full_name", "Twice"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(users(&app).await, 2);
    let listed = app.get("/settings/invitations").await.text().await.unwrap();
    assert!(select_text(&listed, "#invitations")[0].contains("Accepted"));
}

#[tokio::test]
async fn forged_withdrawn_and_expired_invitations_are_refused() {
    let app = invite_only().await;
    app.signed_in_user("host@example.org", PW).await;
    let guest = app.new_client();
    for forged in ["/signup?invite=nope", "/signup?invite=%00%0A"] {
        let res = guest.get(app.url(forged)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{forged}");
    }
    let res = post_form_with(
        &guest,
        &app,
        "/login",
        "/signup",
        &[("invite", "nope"), ("full_name", "X"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let link = invite(&app, "withdrawn@example.org").await;
    let page = app.get("/settings/invitations").await.text().await.unwrap();
    let id = select_attr(&page, "#invitations tr[data-invitation]", "data-invitation").unwrap();
    let res = app
        .post_form(
            "/settings/invitations",
            &format!("/settings/invitations/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = guest.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&res.text().await.unwrap(), "#token-error")[0].contains("withdrawn"));

    let link = invite(&app, "late@example.org").await;
    sqlx::query(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE email = 'late@example.org'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let res = guest.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&res.text().await.unwrap(), "#token-error")[0].contains("expired"));
    assert_eq!(users(&app).await, 1);
}

#[tokio::test]
async fn an_invitation_to_an_address_with_an_account_creates_nothing() {
    let app = invite_only().await;
    app.create_user("taken@example.org", PW).await;
    app.signed_in_user("host@example.org", PW).await;
    // The inviter is told the same as for any address.
    let link = invite(&app, "taken@example.org").await;
    let token = link["/signup?invite=".len()..].to_owned();
    let guest = app.new_client();
    let res = post_form_with(
        &guest,
        &app,
        &link,
        "/signup",
        &[
            ("invite", &token),
            ("full_name", "Other"),
            ("password", "another long password"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        select_text(&res.text().await.unwrap(), "[data-field=email]")[0].contains("already has an account")
    );
    assert_eq!(users(&app).await, 2);
    // The existing account keeps its password.
    let other = app.new_client();
    let res = post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "taken@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn invitations_are_capped_limited_and_private_to_their_inviter() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec![
            "--signup".into(),
            "invite".into(),
            "--max-pending-invitations".into(),
            "2".into(),
        ],
        ..Default::default()
    })
    .await;
    app.signed_in_user("host@example.org", PW).await;
    invite(&app, "a@example.org").await;
    invite(&app, "b@example.org").await;
    let res = app
        .post_form(
            "/settings/invitations",
            "/settings/invitations",
            &[("email", "c@example.org")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(select_text(&page, "[data-field=email]")[0].contains("at most 2 invitations"));
    assert_eq!(
        select_attr(&page, "#email", "value").as_deref(),
        Some("c@example.org")
    );

    // Malformed and oversized addresses re-render the form.
    let long = format!("{}@example.org", "a".repeat(400));
    for bad in ["not-an-address", long.as_str(), ""] {
        let res = app
            .post_form(
                "/settings/invitations",
                "/settings/invitations",
                &[("email", bad)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(has(&res.text().await.unwrap(), "[data-field=email]"));
    }
    // Without the CSRF token nothing is sent.
    let res = app
        .client
        .post(app.url("/settings/invitations"))
        .form(&[("email", "d@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Signed out, the page is not reachable.
    let res = app
        .new_client()
        .get(app.url("/settings/invitations"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Another user sees none of them and cannot withdraw them.
    let page = app.get("/settings/invitations").await.text().await.unwrap();
    let id = select_attr(&page, "#invitations tr[data-invitation]", "data-invitation").unwrap();
    let other = app.new_client();
    app.create_user("other@example.org", PW).await;
    let res = post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let theirs = other
        .get(app.url("/settings/invitations"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!theirs.contains("a@example.org"));
    let res = post_form_with(
        &other,
        &app,
        "/settings/invitations",
        &format!("/settings/invitations/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = post_form_with(
        &other,
        &app,
        "/settings/invitations",
        "/settings/invitations/not-a-uuid/revoke",
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations WHERE revoked_at IS NULL")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(pending, 2);
}

#[tokio::test]
async fn with_sign_up_closed_nobody_can_invite() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--signup".into(), "closed".into()],
        ..Default::default()
    })
    .await;
    app.signed_in_user("host@example.org", PW).await;
    let page = app.get("/settings/invitations").await.text().await.unwrap();
    assert!(has(&page, "#invitations-closed"));
    assert!(!has(&page, "#invite-form"));
    let res = app
        .post_form(
            "/settings/invitations",
            "/settings/invitations",
            &[("email", "x@example.org")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
