//! Billing: seeded plans, the ledger (never negative, append-only, reconciling), promo
//! codes and payment callbacks exact under concurrency, Stripe signatures, and
//! subscriptions through their whole life on a controlled clock.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ender_core::billing::ledger::{self, Kind, LedgerError, Refs};
use ender_core::billing::payments::{self, ConfirmError, Confirmed, Credited, Provider};
use ender_core::billing::plans::{self, Plan};
use ender_core::billing::promo::{self, NewPromo, PromoError};
use ender_core::billing::subscriptions::{self, Change, Renewal, Status, SubscriptionError};
use ender_core::billing::{Cycle, period_containing, stripe};
use ender_core::config::{BillingConfig, SmsConfig};
use ender_core::testing::{TestDb, create_user, test_db};
use ender_core::workspace::{WorkspaceId, repo};
use proptest::prelude::*;

async fn workspace(db: &TestDb, email: &str) -> WorkspaceId {
    let user = create_user(&db.pool, email).await;
    let mut conn = db.pool.acquire().await.unwrap();
    repo::personal(&mut conn, user).await.unwrap().unwrap().id
}

/// A shared workspace without members, made directly (no password to hash).
async fn bare_workspace(db: &TestDb, name: &str) -> WorkspaceId {
    let id = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO workspaces (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(&db.pool)
        .await
        .unwrap();
    WorkspaceId(id)
}

async fn credit(db: &TestDb, ws: WorkspaceId, cents: i64) -> i64 {
    let mut conn = db.pool.acquire().await.unwrap();
    ledger::post(
        &mut conn,
        ws,
        Kind::Adjustment,
        cents,
        "test credit",
        Refs::default(),
    )
    .await
    .unwrap()
}

async fn ledger_sum(db: &TestDb, ws: WorkspaceId) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(amount_cents)::bigint FROM ledger_entries WHERE workspace_id = $1",
    )
    .bind(ws.0)
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

fn billing_on() -> SmsConfig {
    SmsConfig {
        billing: BillingConfig {
            enabled: true,
            ..BillingConfig::default()
        },
        ..SmsConfig::default()
    }
}

async fn plan(db: &TestDb, slug: &str) -> Plan {
    plans::public(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.slug == slug)
        .unwrap()
}

/// A new account's workspace with `cents` in its balance, on Hobby (monthly) since `start`.
async fn on_hobby(db: &TestDb, email: &str, cents: i64, start: DateTime<Utc>) -> WorkspaceId {
    let ws = workspace(db, email).await;
    credit(db, ws, cents).await;
    let hobby = plan(db, "hobby").await;
    subscriptions::upgrade(&db.pool, ws, None, hobby.id, Cycle::Monthly, "usd", start)
        .await
        .unwrap();
    ws
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

#[tokio::test]
async fn the_seeded_plans_are_free_hobby_and_pro_with_free_the_default() {
    let db = test_db().await;
    let all = plans::public(&db.pool).await.unwrap();
    let summary: Vec<(&str, i32, i32, i64, i64)> = all
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.max_sms_per_month,
                p.max_devices,
                p.price_monthly_cents,
                p.price_yearly_cents,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Free", 50, 1, 0, 0),
            ("Hobby", 500, 3, 99, 999),
            ("Pro", 5000, 10, 299, 2999)
        ]
    );
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        plans::default_plan(&mut conn).await.unwrap().unwrap().slug,
        "free"
    );
    // A second default plan is refused by the database.
    let second = sqlx::query("UPDATE plans SET is_default = true WHERE slug = 'hobby'")
        .execute(&db.pool)
        .await;
    assert!(second.is_err());
}

#[tokio::test]
async fn with_billing_off_every_workspace_has_the_self_hosted_limits_of_the_settings() {
    let db = test_db().await;
    let ws = workspace(&db, "off@example.org").await;
    let cfg = SmsConfig::default();
    let mut conn = db.pool.acquire().await.unwrap();
    let l = plans::limits(&mut conn, ws, &cfg, at(2026, 12, 7)).await.unwrap();
    assert_eq!(l.plan, "Self-hosted");
    assert_eq!(
        (l.sms, l.devices, l.api_keys),
        (cfg.max_sms_per_month, cfg.max_devices, cfg.max_api_keys)
    );
    assert_eq!(
        l.period_start,
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(l.period_end, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
}

#[tokio::test]
async fn with_billing_on_the_default_plan_counts_months_from_the_workspace_anchor() {
    let db = test_db().await;
    let ws = workspace(&db, "on@example.org").await;
    sqlx::query("UPDATE workspaces SET period_anchor = $2 WHERE id = $1")
        .bind(ws.0)
        .bind(at(2026, 10, 31))
        .execute(&db.pool)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let l = plans::limits(&mut conn, ws, &billing_on(), at(2026, 12, 7))
        .await
        .unwrap();
    assert_eq!((l.plan.as_str(), l.sms, l.devices), ("Free", 50, 1));
    assert_eq!(l.period_start, at(2026, 11, 30));
    assert_eq!(l.period_end, at(2026, 12, 31));
}

#[test]
fn periods_step_whole_months_from_their_anchor() {
    let anchor = at(2027, 1, 31);
    assert_eq!(
        period_containing(anchor, 1, at(2027, 1, 31)),
        (at(2027, 1, 31), at(2027, 2, 28))
    );
    assert_eq!(
        period_containing(anchor, 1, at(2027, 3, 1)),
        (at(2027, 2, 28), at(2027, 3, 31))
    );
    assert_eq!(
        period_containing(anchor, 1, at(2027, 3, 31)),
        (at(2027, 3, 31), at(2027, 4, 30))
    );
    assert_eq!(
        period_containing(anchor, 12, at(2028, 2, 1)),
        (at(2028, 1, 31), at(2029, 1, 31))
    );
    // Before the anchor: the first period.
    assert_eq!(
        period_containing(anchor, 1, at(2026, 1, 1)),
        (at(2027, 1, 31), at(2027, 2, 28))
    );
}

#[tokio::test]
async fn fifty_concurrent_charges_never_overdraw_the_balance() {
    let db = test_db().await;
    let ws = workspace(&db, "charges@example.org").await;
    credit(&db, ws, 1000).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let r = ledger::post(&mut tx, ws, Kind::Subscription, -30, "charge", Refs::default()).await;
            tx.commit().await.unwrap();
            r
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(LedgerError::Insufficient { need: 30, .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 33);
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 10);
    assert_eq!(ledger_sum(&db, ws).await, 10);
    // The database refuses a negative balance however it is asked.
    let direct = sqlx::query("UPDATE workspaces SET balance_cents = -1 WHERE id = $1")
        .bind(ws.0)
        .execute(&db.pool)
        .await;
    assert!(
        direct
            .unwrap_err()
            .to_string()
            .contains("workspaces_balance_not_negative")
    );
}

#[tokio::test]
async fn the_ledger_is_append_only_but_goes_with_its_workspace() {
    let db = test_db().await;
    let ws = workspace(&db, "append@example.org").await;
    credit(&db, ws, 500).await;
    let update = sqlx::query("UPDATE ledger_entries SET amount_cents = 5000 WHERE workspace_id = $1")
        .bind(ws.0)
        .execute(&db.pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM ledger_entries WHERE workspace_id = $1")
        .bind(ws.0)
        .execute(&db.pool)
        .await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(matches!(
        ledger::post(&mut conn, ws, Kind::Adjustment, 0, "nothing", Refs::default()).await,
        Err(LedgerError::BadAmount)
    ));
    assert!(matches!(
        ledger::post(&mut conn, ws, Kind::Adjustment, i64::MAX, "huge", Refs::default()).await,
        Err(LedgerError::BadAmount)
    ));
    drop(conn);
    sqlx::query("DELETE FROM workspaces WHERE id = $1")
        .bind(ws.0)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(ledger_sum(&db, ws).await, 0);
}

#[test]
fn the_ledger_reconciles_over_random_operation_sequences() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(test_db());
    let n = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(-2_000i64..2_000, 1..40))| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let ws = bare_workspace(&db, &format!("Prop {i}")).await;
            let mut model = 0i64;
            for op in &ops {
                if *op == 0 {
                    continue;
                }
                let kind = if *op > 0 { Kind::Topup } else { Kind::Subscription };
                let mut conn = db.pool.acquire().await.unwrap();
                match ledger::post(&mut conn, ws, kind, *op, "op", Refs::default()).await {
                    Ok(after) => {
                        model += op;
                        assert_eq!(after, model);
                    }
                    Err(LedgerError::Insufficient { .. }) => assert!(model + op < 0),
                    Err(e) => panic!("unexpected {e}"),
                }
                assert!(model >= 0);
            }
            assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), model);
            assert_eq!(ledger_sum(&db, ws).await, model);
        });
    });
}

fn promo_of(code: &str, max: Option<i32>) -> NewPromo {
    NewPromo {
        code: code.to_owned(),
        credit_cents: 250,
        valid_from: Utc::now() - Duration::days(1),
        valid_until: Some(Utc::now() + Duration::days(30)),
        max_redemptions: max,
        max_per_workspace: 1,
    }
}

#[tokio::test]
async fn three_hundred_concurrent_redemptions_of_a_code_for_one_hundred_give_one_hundred() {
    let db = test_db().await;
    promo::create(&db.pool, &promo_of("launch100", Some(100)))
        .await
        .unwrap();
    let mut workspaces = Vec::new();
    for i in 0..300 {
        workspaces.push(bare_workspace(&db, &format!("Team {i}")).await);
    }
    let mut tasks = Vec::new();
    for ws in workspaces.clone() {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            promo::redeem(&pool, ws, None, " Launch100 ", Utc::now()).await
        }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.credit_cents, 250);
                ok += 1;
            }
            Err(PromoError::Exhausted) => exhausted += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, exhausted), (100, 200));
    let credited: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'promo'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(credited, 100);
    let redeemed: i32 = sqlx::query_scalar("SELECT redeemed FROM promo_codes WHERE code = 'LAUNCH100'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(redeemed, 100);
}

#[tokio::test]
async fn a_code_is_redeemed_once_per_workspace_inside_its_window() {
    let db = test_db().await;
    let ws = workspace(&db, "promo@example.org").await;
    promo::create(&db.pool, &promo_of("WELCOME", None)).await.unwrap();
    let r = promo::redeem(&db.pool, ws, None, "welcome", Utc::now())
        .await
        .unwrap();
    assert_eq!((r.credit_cents, r.balance_cents), (250, 250));
    assert!(matches!(
        promo::redeem(&db.pool, ws, None, "WELCOME", Utc::now()).await,
        Err(PromoError::AlreadyRedeemed)
    ));
    let other = workspace(&db, "promo2@example.org").await;
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "WELCOME", Utc::now() + Duration::days(31)).await,
        Err(PromoError::Expired)
    ));
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "WELCOME", Utc::now() - Duration::days(2)).await,
        Err(PromoError::NotYet)
    ));
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "nope", Utc::now()).await,
        Err(PromoError::Unknown)
    ));
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "  ", Utc::now()).await,
        Err(PromoError::Missing)
    ));
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "'; drop table x; --", Utc::now()).await,
        Err(PromoError::Unknown)
    ));
    sqlx::query("UPDATE promo_codes SET active = false")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        promo::redeem(&db.pool, other, None, "WELCOME", Utc::now()).await,
        Err(PromoError::Inactive)
    ));
    assert_eq!(ledger::balance(&db.pool, other).await.unwrap(), 0);
    assert!(
        promo::create(&db.pool, &promo_of("welcome", None)).await.is_err(),
        "codes are unique whatever the case"
    );
}

async fn pending_topup(db: &TestDb, ws: WorkspaceId, cents: i64) -> Confirmed {
    let id = payments::start(&db.pool, ws, None, Provider::Stripe, cents, "usd")
        .await
        .unwrap();
    payments::set_checkout_ref(&db.pool, id, &format!("cs_test_{id}"))
        .await
        .unwrap();
    Confirmed {
        provider: Provider::Stripe,
        reference: id.to_string(),
        checkout_ref: Some(format!("cs_test_{id}")),
        tx_id: format!("pi_{}", id.0.simple()),
        amount_cents: cents,
        currency: "usd".to_owned(),
    }
}

#[tokio::test]
async fn twenty_concurrent_replays_of_a_paid_callback_credit_once() {
    let db = test_db().await;
    let ws = workspace(&db, "replay@example.org").await;
    let paid = pending_topup(&db, ws, 1500).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (pool, paid) = (db.pool.clone(), paid.clone());
        tasks.push(tokio::spawn(async move {
            payments::confirm(&pool, &paid).await.unwrap()
        }));
    }
    let mut credited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Credited::Credited { balance_cents, .. } => {
                assert_eq!(balance_cents, 1500);
                credited += 1;
            }
            Credited::AlreadyProcessed { .. } => {}
            Credited::Unmatched { .. } => panic!("our payment read as unmatched"),
        }
    }
    assert_eq!(credited, 1);
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 1500);
    // The same transaction named by another of our payments is a replay too.
    let mut other = pending_topup(&db, ws, 1500).await;
    other.tx_id = paid.tx_id.clone();
    assert!(matches!(
        payments::confirm(&db.pool, &other).await.unwrap(),
        Credited::AlreadyProcessed { .. }
    ));
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 1500);
}

#[tokio::test]
async fn a_callback_with_the_wrong_amount_currency_or_checkout_moves_no_money() {
    let db = test_db().await;
    let ws = workspace(&db, "wrong@example.org").await;
    let paid = pending_topup(&db, ws, 1500).await;
    let cases = [
        Confirmed {
            amount_cents: 150_000,
            ..paid.clone()
        },
        Confirmed {
            amount_cents: -1500,
            ..paid.clone()
        },
        Confirmed {
            currency: "eur".to_owned(),
            ..paid.clone()
        },
        Confirmed {
            checkout_ref: Some("cs_someone_else".to_owned()),
            ..paid.clone()
        },
        Confirmed {
            tx_id: String::new(),
            ..paid.clone()
        },
    ];
    for c in &cases {
        let e = payments::confirm(&db.pool, c).await.unwrap_err();
        assert!(
            matches!(
                e,
                ConfirmError::Amount { .. }
                    | ConfirmError::Currency { .. }
                    | ConfirmError::Checkout
                    | ConfirmError::NoTransaction
            ),
            "{e}"
        );
    }
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 0);
    // The right callback still works afterwards.
    assert!(matches!(
        payments::confirm(&db.pool, &paid).await.unwrap(),
        Credited::Credited { .. }
    ));
}

#[tokio::test]
async fn a_verified_callback_for_no_payment_of_ours_is_kept_for_the_administrator_once() {
    let db = test_db().await;
    let foreign = Confirmed {
        provider: Provider::Qvapay,
        reference: "not-a-payment".to_owned(),
        checkout_ref: None,
        tx_id: "qv-tx-1".to_owned(),
        amount_cents: 700,
        currency: "usd".to_owned(),
    };
    assert!(matches!(
        payments::confirm(&db.pool, &foreign).await.unwrap(),
        Credited::Unmatched { .. }
    ));
    assert!(matches!(
        payments::confirm(&db.pool, &foreign).await.unwrap(),
        Credited::AlreadyProcessed { .. }
    ));
    let kept = payments::unmatched(&db.pool, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].workspace_id, kept[0].amount_cents), (None, 700));
    // Another workspace's payment id under the other provider is not ours to complete.
    let ws = workspace(&db, "mine@example.org").await;
    let mine = pending_topup(&db, ws, 900).await;
    let crossed = Confirmed {
        provider: Provider::Qvapay,
        tx_id: "qv-tx-2".to_owned(),
        ..mine
    };
    assert!(matches!(
        payments::confirm(&db.pool, &crossed).await.unwrap(),
        Credited::Unmatched { .. }
    ));
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 0);
}

#[test]
fn stripe_signatures_are_checked_with_a_five_minute_tolerance_both_ways() {
    let body = br#"{"type":"checkout.session.completed"}"#;
    let now = 1_800_000_000;
    let header = |t: i64, secret: &str| format!("t={t},v1={}", stripe::sign(secret, t, body));
    assert_eq!(
        stripe::verify(Some(&header(now, "whsec_1")), body, "whsec_1", now),
        Ok(())
    );
    assert_eq!(
        stripe::verify(Some(&header(now - 300, "whsec_1")), body, "whsec_1", now),
        Ok(())
    );
    assert_eq!(
        stripe::verify(Some(&header(now - 301, "whsec_1")), body, "whsec_1", now),
        Err(stripe::SignatureError::Stale)
    );
    assert_eq!(
        stripe::verify(Some(&header(now + 301, "whsec_1")), body, "whsec_1", now),
        Err(stripe::SignatureError::Stale)
    );
    assert_eq!(
        stripe::verify(Some(&header(now, "whsec_other")), body, "whsec_1", now),
        Err(stripe::SignatureError::Mismatch)
    );
    let tampered = br#"{"type":"checkout.session.completed","x":1}"#;
    assert_eq!(
        stripe::verify(Some(&header(now, "whsec_1")), tampered, "whsec_1", now),
        Err(stripe::SignatureError::Mismatch)
    );
    // Several v1 signatures (a secret being rolled): one matching is enough.
    let rolled = format!(
        "t={now},v1={},v1={}",
        "00".repeat(32),
        stripe::sign("whsec_1", now, body)
    );
    assert_eq!(stripe::verify(Some(&rolled), body, "whsec_1", now), Ok(()));
    assert_eq!(
        stripe::verify(None, body, "whsec_1", now),
        Err(stripe::SignatureError::Missing)
    );
    for bad in [
        "",
        "t=abc,v1=00",
        "v1=00",
        &format!("t={now}"),
        &format!("t={now},v1=zz"),
    ] {
        assert_eq!(
            stripe::verify(Some(bad), body, "whsec_1", now),
            Err(stripe::SignatureError::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn only_a_paid_payment_checkout_is_credited() {
    let event = |kind: &str, status: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1", "type": kind,
            "data": {"object": {"id": "cs_1", "mode": "payment", "payment_status": status,
                                 "amount_total": 1500, "currency": "USD", "payment_intent": "pi_1",
                                 "client_reference_id": "ref"}}
        }))
        .unwrap()
    };
    match stripe::parse_event(&event("checkout.session.completed", "paid")).unwrap() {
        stripe::Event::Paid(c) => {
            assert_eq!(
                (c.tx_id.as_str(), c.amount_cents, c.currency.as_str()),
                ("pi_1", 1500, "usd")
            );
            assert_eq!(c.reference, "ref");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        stripe::parse_event(&event("checkout.session.completed", "unpaid")).unwrap(),
        stripe::Event::Ignored(_)
    ));
    assert!(matches!(
        stripe::parse_event(&event("invoice.paid", "paid")).unwrap(),
        stripe::Event::Ignored(_)
    ));
    assert!(stripe::parse_event(b"not json").is_err());
}

#[tokio::test]
async fn an_upgrade_is_paid_from_the_balance_or_refused_without_moving_money() {
    let db = test_db().await;
    let ws = workspace(&db, "upgrade@example.org").await;
    let hobby = plan(&db, "hobby").await;
    let now = at(2026, 12, 7);
    let e = subscriptions::upgrade(&db.pool, ws, None, hobby.id, Cycle::Monthly, "usd", now)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Insufficient balance: need $0.99, have $0.00.");
    assert_eq!(ledger_sum(&db, ws).await, 0);
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(subscriptions::current(&mut conn, ws).await.unwrap().is_none());
    drop(conn);

    credit(&db, ws, 1000).await;
    let Change::Started(s) = subscriptions::upgrade(&db.pool, ws, None, hobby.id, Cycle::Monthly, "usd", now)
        .await
        .unwrap()
    else {
        panic!("expected a started subscription")
    };
    assert_eq!((s.status, s.current_period_end), (Status::Active, at(2027, 1, 7)));
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 901);
    let mut conn = db.pool.acquire().await.unwrap();
    let l = plans::limits(&mut conn, ws, &billing_on(), now).await.unwrap();
    assert_eq!(
        (l.plan.as_str(), l.sms, l.devices, l.period_start),
        ("Hobby", 500, 3, now)
    );
    drop(conn);
    assert!(matches!(
        subscriptions::upgrade(&db.pool, ws, None, hobby.id, Cycle::Monthly, "usd", now).await,
        Err(SubscriptionError::AlreadyOnPlan)
    ));

    // Half way through, Pro: half of Hobby's price comes back, Pro's full price goes.
    let pro = plan(&db, "pro").await;
    let half = now + (at(2027, 1, 7) - now) / 2;
    let Change::Started(p) = subscriptions::upgrade(&db.pool, ws, None, pro.id, Cycle::Monthly, "usd", half)
        .await
        .unwrap()
    else {
        panic!("an upgrade starts at once")
    };
    assert_eq!((p.plan_name.as_str(), p.current_period_start), ("Pro", half));
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 901 + 49 - 299);
    assert_eq!(ledger_sum(&db, ws).await, 651);
    let old = subscriptions::get(&db.pool, ws, s.id).await.unwrap().unwrap();
    assert_eq!(old.status, Status::Canceled);
    // Another workspace cannot see it.
    let other = workspace(&db, "other@example.org").await;
    assert!(subscriptions::get(&db.pool, other, p.id).await.unwrap().is_none());
    assert!(matches!(
        subscriptions::cancel(&db.pool, other, None, true, half).await,
        Err(SubscriptionError::NotFound)
    ));
}

async fn run_all_due(db: &TestDb, now: DateTime<Utc>) -> Vec<Renewal> {
    let mut tx = db.pool.begin().await.unwrap();
    let due = subscriptions::claim_due(&mut tx, now, 3, 100).await.unwrap();
    tx.commit().await.unwrap();
    let mut out = Vec::new();
    for d in due {
        out.push(subscriptions::run_due(&db.pool, d, "usd", now).await.unwrap());
    }
    out
}

#[tokio::test]
async fn renewals_charge_each_period_once_and_a_cancellation_takes_effect_at_its_end() {
    let db = test_db().await;
    let ws = on_hobby(&db, "renew@example.org", 300, at(2026, 12, 7)).await;
    assert!(
        run_all_due(&db, at(2027, 1, 6)).await.is_empty(),
        "nothing is due before the end"
    );

    let end = at(2027, 1, 7);
    let mut tx = db.pool.begin().await.unwrap();
    let due = subscriptions::claim_due(&mut tx, end, 3, 100).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due.len(), 1);
    // A second scheduler finds the period claimed.
    let mut tx = db.pool.begin().await.unwrap();
    assert!(
        subscriptions::claim_due(&mut tx, end, 3, 100)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    let Renewal::Renewed(s) = subscriptions::run_due(&db.pool, due[0], "usd", end)
        .await
        .unwrap()
    else {
        panic!("expected a renewal")
    };
    assert_eq!(
        (s.current_period_start, s.current_period_end),
        (end, at(2027, 2, 7))
    );
    // Running the same job again does nothing.
    assert_eq!(
        subscriptions::run_due(&db.pool, due[0], "usd", end)
            .await
            .unwrap(),
        Renewal::Stale
    );
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 300 - 99 - 99);

    let c = subscriptions::cancel(&db.pool, ws, None, false, at(2027, 1, 20))
        .await
        .unwrap();
    assert!(c.cancel_at_period_end);
    assert!(matches!(
        subscriptions::cancel(&db.pool, ws, None, false, at(2027, 1, 20)).await,
        Err(SubscriptionError::AlreadyCanceled)
    ));
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        plans::limits(&mut conn, ws, &billing_on(), at(2027, 2, 6))
            .await
            .unwrap()
            .plan,
        "Hobby"
    );
    drop(conn);
    let out = run_all_due(&db, at(2027, 2, 7)).await;
    assert!(matches!(&out[..], [Renewal::Ended(s)] if s.status == Status::Canceled));
    let mut conn = db.pool.acquire().await.unwrap();
    let l = plans::limits(&mut conn, ws, &billing_on(), at(2027, 2, 8))
        .await
        .unwrap();
    assert_eq!(
        (l.plan.as_str(), l.sms, l.period_start),
        ("Free", 50, at(2027, 2, 7))
    );
    assert_eq!(
        ledger::balance(&db.pool, ws).await.unwrap(),
        102,
        "no charge after the cancellation"
    );
    let kinds: Vec<String> = subscriptions::history(&db.pool, ws, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["canceled", "cancel_scheduled", "renewed", "subscribed"]);
}

#[tokio::test]
async fn an_unpaid_renewal_is_past_due_then_expires_after_the_grace_period() {
    let db = test_db().await;
    let ws = on_hobby(&db, "lapse@example.org", 99, at(2026, 12, 7)).await;
    let out = run_all_due(&db, at(2027, 1, 7)).await;
    assert!(matches!(&out[..], [Renewal::PastDue(s)] if s.status == Status::PastDue));
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        plans::limits(&mut conn, ws, &billing_on(), at(2027, 1, 8))
            .await
            .unwrap()
            .plan,
        "Hobby",
        "the plan is kept during the grace period"
    );
    drop(conn);
    assert!(
        run_all_due(&db, at(2027, 1, 9)).await.is_empty(),
        "the grace period runs three days"
    );
    let out = run_all_due(&db, Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()).await;
    assert!(matches!(&out[..], [Renewal::Ended(s)] if s.status == Status::Expired));
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        plans::limits(&mut conn, ws, &billing_on(), at(2027, 1, 11))
            .await
            .unwrap()
            .plan,
        "Free"
    );
    assert!(subscriptions::current(&mut conn, ws).await.unwrap().is_none());
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 0);
}

#[tokio::test]
async fn money_arriving_during_the_grace_period_renews_from_the_old_period_end() {
    let db = test_db().await;
    let ws = on_hobby(&db, "rescue@example.org", 99, at(2026, 12, 7)).await;
    run_all_due(&db, at(2027, 1, 7)).await;
    credit(&db, ws, 500).await;
    let Some(Renewal::Renewed(s)) = subscriptions::retry_past_due(&db.pool, ws, "usd", at(2027, 1, 8))
        .await
        .unwrap()
    else {
        panic!("expected a renewal")
    };
    assert_eq!(
        (s.status, s.current_period_start, s.current_period_end),
        (Status::Active, at(2027, 1, 7), at(2027, 2, 7))
    );
    assert!(
        run_all_due(&db, at(2027, 1, 11)).await.is_empty(),
        "the grace end has nothing left to do"
    );
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 500 - 99);
}

#[tokio::test]
async fn a_downgrade_waits_for_the_end_of_the_period() {
    let db = test_db().await;
    let ws = workspace(&db, "down@example.org").await;
    credit(&db, ws, 1000).await;
    let (hobby, pro, free) = (
        plan(&db, "hobby").await,
        plan(&db, "pro").await,
        plan(&db, "free").await,
    );
    subscriptions::upgrade(&db.pool, ws, None, pro.id, Cycle::Monthly, "usd", at(2026, 12, 7))
        .await
        .unwrap();
    let Change::Scheduled(s) = subscriptions::upgrade(
        &db.pool,
        ws,
        None,
        hobby.id,
        Cycle::Monthly,
        "usd",
        at(2026, 12, 10),
    )
    .await
    .unwrap() else {
        panic!("a downgrade is scheduled")
    };
    assert_eq!(
        (s.plan_name.as_str(), s.next_plan_name.as_deref()),
        ("Pro", Some("Hobby"))
    );
    let out = run_all_due(&db, at(2027, 1, 7)).await;
    assert!(matches!(&out[..], [Renewal::Renewed(s)] if s.plan_name == "Hobby"));
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 1000 - 299 - 99);
    // Choosing the free plan is cancelling at the end of the period.
    let Change::Scheduled(s) =
        subscriptions::upgrade(&db.pool, ws, None, free.id, Cycle::Monthly, "usd", at(2027, 1, 8))
            .await
            .unwrap()
    else {
        panic!("moving to free is scheduled")
    };
    assert!(s.cancel_at_period_end);
}

#[test]
fn usage_thresholds_and_typed_amounts() {
    use ender_core::billing::{format_cents, parse_amount};
    use ender_core::quota::crossed;
    assert_eq!(crossed(50, 39, 40), Some(80));
    assert_eq!(crossed(50, 40, 45), None, "80% was crossed before");
    assert_eq!(crossed(50, 30, 50), Some(100), "both at once: the higher");
    assert_eq!(crossed(50, 49, 50), Some(100));
    assert_eq!(crossed(0, 0, 1), None);
    for (typed, cents) in [
        ("12", Some(1200)),
        ("12.5", Some(1250)),
        ("12.34", Some(1234)),
        ("$3", Some(300)),
        (".5", Some(50)),
        ("-2.5", Some(-250)),
    ] {
        assert_eq!(parse_amount(typed), cents, "{typed}");
    }
    for typed in ["", ".", "12.345", "1e3", "12,50", "abc", "--1", "9999999999999"] {
        assert_eq!(parse_amount(typed), None, "{typed}");
    }
    assert_eq!(format_cents(1234, "usd"), "$12.34");
    assert_eq!(format_cents(-5, "usd"), "-$0.05");
    assert_eq!(format_cents(1000, "cup"), "10.00 CUP");
}

#[tokio::test]
async fn claimed_renewals_do_not_hold_back_the_others() {
    let db = test_db().await;
    let hobby = plan(&db, "hobby").await;
    for i in 0..3 {
        let ws = bare_workspace(&db, &format!("Due {i}")).await;
        credit(&db, ws, 500).await;
        subscriptions::upgrade(
            &db.pool,
            ws,
            None,
            hobby.id,
            Cycle::Monthly,
            "usd",
            at(2026, 12, 1),
        )
        .await
        .unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let mut tx = db.pool.begin().await.unwrap();
        let due = subscriptions::claim_due(&mut tx, at(2027, 1, 2), 3, 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(due.len(), 1, "one at a time, each a new one");
        assert!(seen.insert(due[0].subscription));
    }
    let mut tx = db.pool.begin().await.unwrap();
    assert!(
        subscriptions::claim_due(&mut tx, at(2027, 1, 2), 3, 1)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn concurrent_upgrades_of_one_workspace_start_one_subscription() {
    let db = test_db().await;
    let ws = workspace(&db, "twice@example.org").await;
    credit(&db, ws, 1000).await;
    let hobby = plan(&db, "hobby").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            subscriptions::upgrade(&pool, ws, None, hobby.id, Cycle::Monthly, "usd", at(2026, 12, 7)).await
        }));
    }
    let mut started = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Change::Started(_)) => started += 1,
            Err(SubscriptionError::AlreadyOnPlan) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert_eq!(ledger::balance(&db.pool, ws).await.unwrap(), 1000 - 99);
}
