//! Sign-up, verification, sign-in, reset, settings, deletion, setup and their bad inputs.

use reqwest::StatusCode;

use crate::helpers::*;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_verify_log_out_and_log_in() {
    let app = TestApp::spawn().await;
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[
                ("email", "ada@example.org"),
                ("password", PW),
                ("full_name", "Ada"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(has(&res.text().await.unwrap(), "#check-email"));

    // Not verified yet: signing in is refused with a way to get a new link.
    let res = app.login("ada@example.org", PW).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(select_text(&body, "#form-error")[0].contains("Confirm your email"));

    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    assert!(link.starts_with("/verify-email?token="), "{link}");
    let res = app.get(&link).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let home = app.get("/").await.text().await.unwrap();
    assert!(select_text(&home, "#welcome h2")[0].contains("Ada"));
    assert!(
        select_text(&home, ".toast")
            .iter()
            .any(|t| t.contains("confirmed"))
    );

    // The link is single-use.
    let res = app.new_client().get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&res.text().await.unwrap(), "#token-error")[0].contains("already been used"));

    let res = app.post_form("/", "/logout", &[]).await;
    assert_eq!(location(&res), "/login");
    assert_eq!(location(&app.get("/").await), "/login?next=%2F");

    let res = app.login("ADA@example.org", PW).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_up_with_bad_input_shows_the_form_again_with_values_kept() {
    let app = TestApp::spawn().await;
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[
                ("email", "not-an-email"),
                ("password", "short"),
                ("full_name", "Grace"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(has(&body, ".field-error[data-field=email]"));
    assert!(select_text(&body, ".field-error[data-field=password]")[0].contains("10 characters"));
    assert_eq!(
        select_attr(&body, "input#email", "value").unwrap(),
        "not-an-email"
    );
    assert_eq!(select_attr(&body, "input#full_name", "value").unwrap(), "Grace");
    // The password is never echoed back.
    assert_eq!(select_attr(&body, "input#password", "value").unwrap(), "");

    app.create_user("grace@example.org", PW).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// What a sign-up answers, with the address itself blanked out.
async fn sign_up_answer(app: &TestApp, email: &str) -> (StatusCode, String, Vec<String>) {
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[("email", email), ("password", PW), ("full_name", "Grace")],
        )
        .await;
    let status = res.status();
    let to = location(&res);
    let body = res.text().await.unwrap().replace(email, "ADDRESS");
    (status, to, select_text(&body, "main"))
}

#[tokio::test]
async fn sign_up_answers_the_same_for_a_taken_address_and_mails_its_owner() {
    let app = TestApp::spawn().await;
    app.create_user("grace@example.org", PW).await;
    let taken = sign_up_answer(&app, "Grace@Example.org").await;
    let fresh = sign_up_answer(&app, "hopper@example.org").await;
    assert_eq!(taken.0, StatusCode::OK);
    assert_eq!(taken, fresh, "no account enumeration through sign-up");
    assert!(taken.2[0].contains("We sent a link to ADDRESS"), "{:?}", taken.2);

    let mails = app.wait_for_mails(2).await;
    let to_owner = mails
        .iter()
        .find(|m| m.contains("To: Grace@Example.org"))
        .expect("a mail to the owner");
    assert!(to_owner.contains("you already have an account"), "{to_owner}");
    assert_eq!(link_in(to_owner, &app.url("")), "/login");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("To: hopper@example.org") && m.contains("/verify-email?token="))
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn forgot_password_and_resend_answer_the_same_whoever_asks() {
    let app = TestApp::spawn().await;
    app.create_user("known@example.org", PW).await;
    app.post_form(
        "/signup",
        "/signup",
        &[
            ("email", "waiting@example.org"),
            ("password", PW),
            ("full_name", ""),
        ],
    )
    .await;
    app.wait_for_mails(1).await;
    for (path, existing) in [
        ("/forgot-password", "known@example.org"),
        ("/verify-email/resend", "waiting@example.org"),
    ] {
        let mut answers = Vec::new();
        for email in [existing, "nobody@example.org"] {
            let res = app.post_form(path, path, &[("email", email)]).await;
            let status = res.status();
            let to = location(&res);
            let body = res.text().await.unwrap().replace(email, "ADDRESS");
            answers.push((status, to, select_text(&body, "main")));
        }
        assert_eq!(answers[0].0, StatusCode::OK);
        assert_eq!(answers[0], answers[1], "{path}");
    }
    // The mails for the existing accounts arrive; none for the unknown address.
    let mails = app.wait_for_mails(3).await;
    assert!(
        mails[1..]
            .iter()
            .any(|m| m.contains("To: known@example.org") && m.contains("/reset-password?token="))
    );
    assert!(
        mails[1..]
            .iter()
            .any(|m| m.contains("To: waiting@example.org") && m.contains("/verify-email?token="))
    );
    assert!(!mails.iter().any(|m| m.contains("nobody@example.org")));
}

#[tokio::test]
async fn without_required_verification_sign_up_signs_in_at_once() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--require-email-verification".into(), "false".into()],
        ..Default::default()
    })
    .await;
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[("email", "lin@example.org"), ("password", PW), ("full_name", "")],
        )
        .await;
    assert_eq!(location(&res), "/");
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    assert!(app.mails().is_empty());
}

#[tokio::test]
async fn wrong_passwords_get_a_generic_error_and_then_429() {
    let app = TestApp::spawn().await;
    app.create_user("kim@example.org", PW).await;
    let unknown = app.login("nobody@example.org", PW).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = select_text(&unknown.text().await.unwrap(), "#form-error");
    let wrong = app.login("kim@example.org", "wrong password!!").await;
    let wrong = select_text(&wrong.text().await.unwrap(), "#form-error");
    assert_eq!(unknown, wrong, "no account enumeration");
    assert_eq!(wrong[0], "Incorrect email or password.");

    for _ in 0..4 {
        app.login("kim@example.org", "wrong password!!").await;
    }
    // Five failures for this account from this IP in this minute: even the right password waits.
    let res = app.login("kim@example.org", PW).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(has(&res.text().await.unwrap(), ".error-page"));
}

/// A server that believes `X-Forwarded-For` from loopback, so a test can pick its address.
async fn app_behind_a_proxy() -> TestApp {
    TestApp::spawn_with(Options {
        extra_args: vec!["--trusted-proxies".into(), "127.0.0.1/32".into()],
        ..Default::default()
    })
    .await
}

/// A browser whose requests come from `ip` (through the trusted proxy).
fn client_from(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn login_with(client: &reqwest::Client, app: &TestApp, email: &str, password: &str) -> StatusCode {
    post_form_with(
        client,
        app,
        "/login",
        "/login",
        &[("email", email), ("password", password)],
    )
    .await
    .status()
}

#[tokio::test]
async fn a_stranger_cannot_lock_an_account_out_from_elsewhere_and_a_reset_clears_the_count() {
    let app = app_behind_a_proxy().await;
    app.create_user("max@example.org", PW).await;
    let stranger = client_from("203.0.113.7");
    for _ in 0..5 {
        assert_eq!(
            login_with(&stranger, &app, "max@example.org", "wrong password!!").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        login_with(&stranger, &app, "max@example.org", PW).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The owner, elsewhere, signs in.
    let owner = client_from("198.51.100.20");
    assert_eq!(
        login_with(&owner, &app, "max@example.org", PW).await,
        StatusCode::SEE_OTHER
    );

    // A reset through the mailed link forgets the failures against the account.
    let res = post_form_with(
        &stranger,
        &app,
        "/forgot-password",
        "/forgot-password",
        &[("email", "max@example.org")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    let token = link.trim_start_matches("/reset-password?token=").to_owned();
    let res = post_form_with(
        &stranger,
        &app,
        &link,
        "/reset-password",
        &[
            ("token", &token),
            ("password", "new password 123"),
            ("password_confirm", "new password 123"),
        ],
    )
    .await;
    assert_eq!(location(&res), "/");
    assert_eq!(
        login_with(
            &client_from("203.0.113.7"),
            &app,
            "max@example.org",
            "new password 123"
        )
        .await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_limited_too() {
    let app = app_behind_a_proxy().await;
    app.create_user("spray@example.org", PW).await;
    let sprayer = client_from("203.0.113.9");
    for i in 0..20 {
        assert_eq!(
            login_with(&sprayer, &app, &format!("user{i}@example.org"), PW).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        login_with(&sprayer, &app, "spray@example.org", PW).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_with(&client_from("203.0.113.10"), &app, "spray@example.org", PW).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn concurrent_guesses_cannot_outrun_the_limit() {
    let app = TestApp::spawn().await;
    app.create_user("race@example.org", PW).await;
    let token = app.csrf("/login").await;
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let request = app.client.post(app.url("/login")).form(&[
                ("_csrf", token.clone()),
                ("email", "race@example.org".to_owned()),
                ("password", format!("wrong guess {i:04}")),
            ]);
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut judged = 0;
    let mut refused = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            StatusCode::UNPROCESSABLE_ENTITY => judged += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (1..=5).contains(&judged),
        "{judged} guesses were checked against the password"
    );
    assert_eq!(judged + refused, 50);
}

#[tokio::test]
async fn reset_and_setup_forms_are_limited_per_address() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let res = app
            .post_form(
                "/forgot-password",
                "/reset-password",
                &[
                    ("token", "forged"),
                    ("password", "new password 123"),
                    ("password_confirm", "new password 123"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let res = app
        .post_form(
            "/forgot-password",
            "/reset-password",
            &[
                ("token", "forged"),
                ("password", "new password 123"),
                ("password_confirm", "new password 123"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    let token = ender_core::setup::issue_token_if_needed(app.pool())
        .await
        .unwrap()
        .unwrap();
    let page = format!("/setup?token={token}");
    let forged = [
        ("token", "forged"),
        ("email", "root@example.org"),
        ("password", PW),
        ("full_name", ""),
    ];
    for _ in 0..5 {
        assert_eq!(
            app.post_form(&page, "/setup", &forged).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.post_form(&page, "/setup", &forged).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn wrong_current_passwords_on_the_settings_forms_are_limited() {
    let app = TestApp::spawn().await;
    app.signed_in_user("cur@example.org", PW).await;
    let change = |current: &'static str| {
        [
            ("current_password", current),
            ("new_password", "brand new pass"),
            ("new_password_confirm", "brand new pass"),
        ]
    };
    for _ in 0..3 {
        let res = app
            .post_form("/settings", "/settings/password", &change("not it at all"))
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    for _ in 0..2 {
        let res = app
            .post_form("/settings", "/settings/delete", &[("password", "not it at all")])
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Five wrong confirmations in this minute, on either form: even the right one waits.
    assert_eq!(
        app.post_form("/settings", "/settings/password", &change(PW))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.post_form("/settings", "/settings/delete", &[("password", PW)])
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn forms_without_or_with_a_wrong_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    app.create_user("eve@example.org", PW).await;
    app.get("/login").await;
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("email", "eve@example.org"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("_csrf", "x".repeat(32).as_str()),
            ("email", "eve@example.org"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Without any session at all.
    let res = app
        .new_client()
        .post(app.url("/login"))
        .form(&[
            ("_csrf", "anything"),
            ("email", "eve@example.org"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // HTMX-style header works like the field.
    let token = app.csrf("/login").await;
    let res = app
        .client
        .post(app.url("/login"))
        .header("x-csrf-token", token)
        .form(&[("email", "eve@example.org"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_that_need_sign_in_redirect_there_and_back() {
    let app = TestApp::spawn().await;
    app.create_user("sam@example.org", PW).await;
    let res = app.get("/settings").await;
    assert_eq!(location(&res), "/login?next=%2Fsettings");
    let page = app.get("/login?next=%2Fsettings").await.text().await.unwrap();
    assert_eq!(
        select_attr(&page, "input[name=next]", "value").unwrap(),
        "/settings"
    );
    let res = app
        .post_form(
            "/login",
            "/login",
            &[
                ("email", "sam@example.org"),
                ("password", PW),
                ("next", "/settings"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/settings");
    // Never off-site.
    app.post_form("/", "/logout", &[]).await;
    let res = app
        .post_form(
            "/login",
            "/login",
            &[
                ("email", "sam@example.org"),
                ("password", PW),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn hostile_next_values_redirect_home() {
    let app = TestApp::spawn().await;
    app.signed_in_user("tab@example.org", PW).await;
    for next in [
        "/%09/evil.example",
        "/%5Cevil",
        "/%2F%2Fevil",
        "/%252F%252Fevil",
        "%2F%2Fevil",
        "https://evil.example/",
    ] {
        let res = app.get(&format!("/login?next={next}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&res), "/", "{next}");
    }
    let res = app.get("/login?next=%2Fcontacts%3Fx%3D1").await;
    assert_eq!(location(&res), "/contacts?x=1");
    // The same after signing in with the form.
    app.post_form("/", "/logout", &[]).await;
    let res = app
        .post_form(
            "/login",
            "/login",
            &[
                ("email", "tab@example.org"),
                ("password", PW),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn sign_in_rotates_the_session_id_and_sign_out_deletes_it() {
    let app = TestApp::spawn().await;
    app.create_user("rot@example.org", PW).await;
    let before = app.get("/login").await;
    let cookie_before = before
        .cookies()
        .find(|c| c.name() == "ender_session")
        .unwrap()
        .value()
        .to_owned();
    let res = app.login("rot@example.org", PW).await;
    let cookie_after = res
        .cookies()
        .find(|c| c.name() == "ender_session")
        .unwrap()
        .value()
        .to_owned();
    assert_ne!(cookie_before, cookie_after);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id IS NOT NULL")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    app.post_form("/", "/logout", &[]).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id IS NOT NULL")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn sessions_end_after_the_absolute_lifetime() {
    let app = TestApp::spawn().await;
    app.signed_in_user("old@example.org", PW).await;
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    sqlx::query("UPDATE sessions SET data = jsonb_set(data, '{auth_at}', to_jsonb(extract(epoch FROM now())::bigint - 31 * 86400))")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(location(&app.get("/").await), "/login?next=%2F");
}

#[tokio::test]
async fn password_reset_does_not_reveal_accounts_and_works_once() {
    let app = TestApp::spawn().await;
    app.create_user("rita@example.org", PW).await;

    let unknown = app
        .post_form(
            "/forgot-password",
            "/forgot-password",
            &[("email", "ghost@example.org")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::OK);
    let unknown =
        select_text(&unknown.text().await.unwrap(), "#request-sent")[0].replace("ghost@example.org", "X");
    assert!(app.mails().is_empty());

    let known = app
        .post_form(
            "/forgot-password",
            "/forgot-password",
            &[("email", "rita@example.org")],
        )
        .await;
    let known =
        select_text(&known.text().await.unwrap(), "#request-sent")[0].replace("rita@example.org", "X");
    assert_eq!(unknown, known);
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    assert!(link.starts_with("/reset-password?token="));

    // A second browser signed in as Rita is signed out by the reset.
    let other = app.new_client();
    let res = post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "rita@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let page = app.get(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let token = link.trim_start_matches("/reset-password?token=");
    let mismatch = app
        .post_form(
            &link,
            "/reset-password",
            &[
                ("token", token),
                ("password", "new password 123"),
                ("password_confirm", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form(
            &link,
            "/reset-password",
            &[
                ("token", token),
                ("password", "new password 123"),
                ("password_confirm", "new password 123"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/");
    assert_eq!(
        location(&other.get(app.url("/")).send().await.unwrap()),
        "/login?next=%2F"
    );

    // Reused link.
    let again = app.new_client().get(app.url(&link)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body = again.text().await.unwrap();
    assert!(select_text(&body, "#token-error")[0].contains("already been used"));
    assert_eq!(
        select_attr(&body, ".auth-card a.btn", "href").unwrap(),
        "/forgot-password"
    );

    // Forged link.
    let forged = app.get("/reset-password?token=forged").await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&forged.text().await.unwrap(), "#token-error")[0].contains("not valid"));

    app.post_form("/", "/logout", &[]).await;
    assert_eq!(
        app.login("rita@example.org", PW).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.login("rita@example.org", "new password 123").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn expired_links_say_so() {
    let app = TestApp::spawn().await;
    app.create_user("tom@example.org", PW).await;
    app.post_form(
        "/forgot-password",
        "/forgot-password",
        &[("email", "tom@example.org")],
    )
    .await;
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    sqlx::query("UPDATE email_tokens SET expires_at = now() - interval '1 minute'")
        .execute(app.pool())
        .await
        .unwrap();
    let res = app.get(&link).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(select_text(&res.text().await.unwrap(), "#token-error")[0].contains("expired"));
}

#[tokio::test]
async fn a_verification_link_can_be_sent_again() {
    let app = TestApp::spawn().await;
    app.post_form(
        "/signup",
        "/signup",
        &[("email", "val@example.org"), ("password", PW), ("full_name", "")],
    )
    .await;
    app.wait_for_mails(1).await;
    let first = app.last_mail_link();
    let res = app
        .post_form(
            "/verify-email/resend",
            "/verify-email/resend",
            &[("email", "val@example.org")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_mails(2).await;
    let second = app.last_mail_link();
    assert_ne!(first, second);
    // The old link was retired by the new one.
    assert_eq!(app.get(&first).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(location(&app.get(&second).await), "/");
}

#[tokio::test]
async fn mail_requests_are_rate_limited() {
    let app = TestApp::spawn().await;
    app.create_user("lim@example.org", PW).await;
    for _ in 0..3 {
        let res = app
            .post_form(
                "/forgot-password",
                "/forgot-password",
                &[("email", "lim@example.org")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app
        .post_form(
            "/forgot-password",
            "/forgot-password",
            &[("email", "lim@example.org")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.wait_for_mails(3).await.len(), 3);
}

#[tokio::test]
async fn profile_and_password_can_be_changed() {
    let app = TestApp::spawn().await;
    app.signed_in_user("pat@example.org", PW).await;
    let other = app.new_client();
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "pat@example.org"), ("password", PW)],
    )
    .await;

    let res = app
        .post_form("/settings", "/settings/profile", &[("full_name", "Pat Doe")])
        .await;
    assert_eq!(location(&res), "/settings");
    let page = app.get("/settings").await.text().await.unwrap();
    assert_eq!(select_attr(&page, "input#full_name", "value").unwrap(), "Pat Doe");
    assert_eq!(select_text(&page, ".account-menu summary")[0], "Pat Doe");

    let bad = app
        .post_form(
            "/settings",
            "/settings/profile",
            &[("full_name", &"x".repeat(101))],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let wrong = app
        .post_form(
            "/settings",
            "/settings/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", "brand new pass"),
                ("new_password_confirm", "brand new pass"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has(
        &wrong.text().await.unwrap(),
        ".field-error[data-field=current_password]"
    ));

    let res = app
        .post_form(
            "/settings",
            "/settings/password",
            &[
                ("current_password", PW),
                ("new_password", "brand new pass"),
                ("new_password_confirm", "brand new pass"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/settings");
    // This browser stays signed in; the other one is signed out.
    assert_eq!(app.get("/settings").await.status(), StatusCode::OK);
    assert_eq!(
        other.get(app.url("/settings")).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn deleting_the_account_removes_everything_it_owns() {
    let app = TestApp::spawn().await;
    app.signed_in_user("del@example.org", PW).await;
    app.create_user("keep@example.org", PW).await;
    let wrong = app
        .post_form(
            "/settings",
            "/settings/delete",
            &[("password", "not my password")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has(
        &wrong.text().await.unwrap(),
        ".field-error[data-field=delete_password]"
    ));

    app.post_form(
        "/forgot-password",
        "/forgot-password",
        &[("email", "del@example.org")],
    )
    .await;
    app.wait_for_mails(1).await;
    let res = app
        .post_form("/settings", "/settings/delete", &[("password", PW)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(has(&res.text().await.unwrap(), "#account-deleted"));
    for (table, expected) in [("users", 1), ("email_tokens", 0), ("oauth_identities", 0)] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(app.pool())
            .await
            .unwrap();
        assert_eq!(n, expected, "{table}");
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id IS NOT NULL")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(
        app.login("del@example.org", PW).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn the_first_administrator_is_created_with_the_setup_link_once() {
    let app = TestApp::spawn().await;
    let token = ender_core::setup::issue_token_if_needed(app.pool())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        app.get("/setup?token=wrong").await.status(),
        StatusCode::BAD_REQUEST
    );
    let page = format!("/setup?token={token}");
    assert_eq!(app.get(&page).await.status(), StatusCode::OK);

    let bad = app
        .post_form(
            &page,
            "/setup",
            &[
                ("token", &token),
                ("email", "root@"),
                ("password", PW),
                ("full_name", "Root"),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let forged = app
        .post_form(
            &page,
            "/setup",
            &[
                ("token", "forged"),
                ("email", "root@example.org"),
                ("password", PW),
                ("full_name", ""),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);

    let res = app
        .post_form(
            &page,
            "/setup",
            &[
                ("token", &token),
                ("email", "root@example.org"),
                ("password", PW),
                ("full_name", "Root"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin");
    let admin = app.get("/admin").await;
    assert_eq!(admin.status(), StatusCode::OK);
    let body = admin.text().await.unwrap();
    assert_eq!(select_text(&body, "#total-users")[0], "1");
    assert!(select_text(&body, ".sidenav a").iter().any(|t| t == "Admin"));

    // Once an administrator exists the setup page is gone and no new link is issued.
    assert_eq!(app.get(&page).await.status(), StatusCode::NOT_FOUND);
    assert!(
        ender_core::setup::issue_token_if_needed(app.pool())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn non_admins_get_403_on_admin_pages_and_no_admin_link() {
    let app = TestApp::spawn().await;
    app.signed_in_user("user@example.org", PW).await;
    let res = app.get("/admin").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let home = app.get("/").await.text().await.unwrap();
    assert!(!select_text(&home, ".sidenav a").iter().any(|t| t == "Admin"));
    // The user cannot grant it to themselves through any form field.
    let res = app
        .post_form(
            "/settings",
            "/settings/profile",
            &[("full_name", "X"), ("is_admin", "true")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/admin").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_sign_up_closed_only_the_admin_command_makes_accounts() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--signup".into(), "closed".into()],
        ..Default::default()
    })
    .await;
    let page = app.get("/signup").await.text().await.unwrap();
    assert!(select_text(&page, "#signup-closed")[0].contains("Sign-up is closed"));
    assert!(!has(&page, "#signup-form"));
    let res = app
        .post_form(
            "/login",
            "/signup",
            &[("email", "new@example.org"), ("password", PW), ("full_name", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(has(&res.text().await.unwrap(), "#signup-closed"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
    assert!(app.mails().is_empty());

    // What `ender-web admin create` runs still works, and that account signs in.
    ender_core::account::promote_or_create_admin(
        app.pool(),
        &ender_core::account::Email::parse("boss@example.org").unwrap(),
        Some(&ender_core::account::Password::parse(PW, "password").unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        app.login("boss@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_up_is_open_by_default() {
    let app = TestApp::spawn().await;
    let page = app.get("/signup").await.text().await.unwrap();
    assert!(has(&page, "#signup-form"));
    assert!(!has(&page, "#signup-closed"));
}

#[tokio::test]
async fn a_verification_link_signs_in_only_the_browser_that_signed_up() {
    let app = TestApp::spawn().await;
    let res = app
        .post_form(
            "/signup",
            "/signup",
            &[
                ("email", "mine@example.org"),
                ("password", PW),
                ("full_name", "Mine"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_mails(1).await;
    let link = app.last_mail_link();
    // Someone else's browser (a victim sent the attacker's own link) opens it: the address
    // is confirmed, nobody is signed in.
    let other = app.new_client();
    let res = other.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    let res = other.get(app.url("/")).send().await.unwrap();
    assert_eq!(location(&res), "/login?next=%2F");
    let login = other
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        select_text(&login, ".toast")
            .iter()
            .any(|t| t.contains("Sign in to continue"))
    );
    let verified: bool = sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(verified);
    // The owner signs in with the password.
    assert_eq!(
        app.login("mine@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
}
