//! Contacts, groups and imports on real PostgreSQL.

use ender_core::contact::import::{self, Settings};
use ender_core::contact::import_csv::{ColumnMapping, ContactDraft};
use ender_core::contact::repo::{self, OnDuplicate};
use ender_core::contact::{ContactError, ContactInput, ContactQuery};
use ender_core::testing::{create_user, test_db};

fn draft(name: &str, phone: &str, groups: &[&str]) -> ContactDraft {
    ContactDraft {
        name: name.into(),
        phone: phone.into(),
        notes: String::new(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

#[tokio::test]
async fn contacts_are_unique_per_user_and_invisible_to_others() {
    let db = test_db().await;
    let (a, b) = (
        create_user(&db.pool, "a@example.org").await,
        create_user(&db.pool, "b@example.org").await,
    );
    let input = ContactInput::parse("Ana", "+15551230001", "", vec![]).unwrap();
    let ana = repo::create(&db.pool, a, &input).await.unwrap();
    assert!(matches!(
        repo::create(&db.pool, a, &input).await,
        Err(ContactError::DuplicateNumber(n)) if n == "+15551230001"
    ));
    // The same number is fine for another user.
    repo::create(&db.pool, b, &input).await.unwrap();
    assert!(repo::find(&db.pool, b, ana.id).await.unwrap().is_none());
    assert!(matches!(
        repo::update(&db.pool, b, ana.id, &input).await,
        Err(ContactError::NotFound)
    ));
    assert_eq!(repo::delete(&db.pool, b, &[ana.id]).await.unwrap(), 0);
    // Another user's group cannot be joined.
    let bg = repo::create_group(&db.pool, b, "B's").await.unwrap();
    let sneaky = ContactInput::parse("Ana", "+15551230001", "", vec![bg.id]).unwrap();
    assert!(matches!(
        repo::update(&db.pool, a, ana.id, &sneaky).await,
        Err(ContactError::GroupNotFound)
    ));
    assert!(matches!(
        repo::add_to_group(&db.pool, a, bg.id, &[ana.id]).await,
        Err(ContactError::GroupNotFound)
    ));
    assert!(matches!(
        repo::create_group(&db.pool, b, "b's").await,
        Err(ContactError::DuplicateGroup(_))
    ));
}

#[tokio::test]
async fn search_and_group_filters_count_correctly() {
    let db = test_db().await;
    let user = create_user(&db.pool, "s@example.org").await;
    let staff = repo::create_group(&db.pool, user, "Staff").await.unwrap();
    for i in 0..30 {
        let groups = if i % 3 == 0 { vec![staff.id] } else { vec![] };
        let input =
            ContactInput::parse(&format!("Person {i:02}"), &format!("+1555000{i:04}"), "", groups).unwrap();
        repo::create(&db.pool, user, &input).await.unwrap();
    }
    let q = |search: Option<&str>, group| ContactQuery {
        search: search.map(str::to_owned),
        group,
        offset: 0,
        limit: 5,
    };
    let (page, total) = repo::list(&db.pool, user, &q(None, None)).await.unwrap();
    assert_eq!((page.len(), total), (5, 30));
    let (_, total) = repo::list(&db.pool, user, &q(None, Some(staff.id)))
        .await
        .unwrap();
    assert_eq!(total, 10);
    let (page, total) = repo::list(&db.pool, user, &q(Some("person 1"), None))
        .await
        .unwrap();
    assert_eq!((page[0].name.as_str(), total), ("Person 10", 10));
    let (_, total) = repo::list(&db.pool, user, &q(Some("+15550000"), Some(staff.id)))
        .await
        .unwrap();
    assert_eq!(total, 10);
    // LIKE wildcards in a search are literal.
    let (_, total) = repo::list(&db.pool, user, &q(Some("%"), None)).await.unwrap();
    assert_eq!(total, 0);
    let (groups, _) = repo::list_groups(&db.pool, user, 0, 10).await.unwrap();
    assert_eq!((groups[0].name.as_str(), groups[0].members), ("Staff", 10));
}

#[tokio::test]
async fn upserting_drafts_creates_updates_or_skips_and_fills_groups() {
    let db = test_db().await;
    let user = create_user(&db.pool, "u@example.org").await;
    let target = repo::create_group(&db.pool, user, "Imported").await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let first = [
        draft("Ana", "+15550000001", &["Parents", "Year 5"]),
        draft("Ben", "+15550000002", &["parents"]),
    ];
    let counts = repo::upsert_drafts(&mut conn, user, &first, OnDuplicate::Update, Some(target.id))
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated, counts.skipped), (2, 0, 0));
    let again = [
        draft("Ana Maria", "+15550000001", &[]),
        draft("Cy", "+15550000003", &[]),
        draft("Cy 2", "+15550000003", &[]),
    ];
    let counts = repo::upsert_drafts(&mut conn, user, &again, OnDuplicate::Skip, None)
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated, counts.skipped), (1, 0, 2));
    let counts = repo::upsert_drafts(&mut conn, user, &again[..1], OnDuplicate::Update, None)
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated, counts.skipped), (0, 1, 0));
    let (all, total) = repo::list(
        &db.pool,
        user,
        &ContactQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(total, 3);
    assert_eq!(all[0].name, "Ana Maria");
    let names: Vec<&str> = all[0].groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["Imported", "Parents", "Year 5"]);
    let (groups, _) = repo::list_groups(&db.pool, user, 0, 10).await.unwrap();
    let parents = groups.iter().find(|g| g.name == "Parents").unwrap();
    assert_eq!(parents.members, 2, "\"parents\" is the same group");
}

#[tokio::test]
async fn an_import_runs_once_even_when_two_runners_race() {
    let db = test_db().await;
    let user = create_user(&db.pool, "imp@example.org").await;
    let mut csv = String::from("Name;Mobile;Notes\n");
    for i in 0..5_000 {
        csv.push_str(&format!("Person {i};+1555{i:07};note {i}\n"));
    }
    csv.push_str("Broken;12345;bad\n");
    let id = import::upload(&db.pool, user, "people.csv", csv.as_bytes())
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    assert_eq!(found.settings.delimiter, b';');
    assert_eq!(found.settings.mapping.phone, Some(1));
    assert_eq!(found.total_rows, 5_001);
    let settings = Settings {
        mapping: ColumnMapping {
            name: Some(0),
            phone: Some(1),
            notes: Some(2),
            groups: None,
        },
        ..found.settings.clone()
    };
    let preview = import::preview(&db.pool, &found, &settings, 3).await.unwrap();
    assert_eq!(preview.rows.len(), 3);
    import::start(&db.pool, user, id, &settings).await.unwrap();
    assert!(
        import::start(&db.pool, user, id, &settings).await.is_err(),
        "starts once"
    );
    let (p1, p2) = (db.pool.clone(), db.pool.clone());
    let (r1, r2) = tokio::join!(import::run(&p1, user, id), import::run(&p2, user, id));
    r1.unwrap();
    r2.unwrap();
    // Whichever runner lost a chunk stopped; the survivor (or a resume) finishes it.
    let mut done = import::find(&db.pool, user, id).await.unwrap().unwrap();
    if done.status == "running" {
        import::run(&db.pool, user, id).await.unwrap();
        done = import::find(&db.pool, user, id).await.unwrap().unwrap();
    }
    assert_eq!(done.status, "done");
    assert_eq!(
        (done.processed, done.created, done.updated, done.failed),
        (5_001, 5_000, 0, 1)
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 5_000);
    let errors = String::from_utf8(import::errors_csv(&db.pool, user, id).await.unwrap().unwrap()).unwrap();
    assert!(errors.contains("5002"), "{errors}");
    let other = create_user(&db.pool, "other@example.org").await;
    assert!(import::find(&db.pool, other, id).await.unwrap().is_none());
    assert!(import::errors_csv(&db.pool, other, id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stalled_import_is_resumed_from_where_it_stopped() {
    let db = test_db().await;
    let user = create_user(&db.pool, "stall@example.org").await;
    let mut csv = String::from("name,phone\n");
    for i in 0..4_500 {
        csv.push_str(&format!("P{i},+1666{i:07}\n"));
    }
    let id = import::upload(&db.pool, user, "p.csv", csv.as_bytes())
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    import::start(&db.pool, user, id, &found.settings).await.unwrap();
    // A runner wrote the first chunk and died.
    sqlx::query("UPDATE contact_imports SET processed = 2000, created = 2000, heartbeat_at = now() - interval '1 minute' WHERE id = $1")
        .bind(id.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let first: Vec<ContactDraft> = (0..2_000)
        .map(|i| draft(&format!("P{i}"), &format!("+1666{i:07}"), &[]))
        .collect();
    repo::upsert_drafts(&mut conn, user, &first, OnDuplicate::Update, None)
        .await
        .unwrap();
    assert!(import::claim_stale(&db.pool, user, id).await.unwrap());
    assert!(
        !import::claim_stale(&db.pool, user, id).await.unwrap(),
        "a fresh heartbeat is not stale"
    );
    import::run(&db.pool, user, id).await.unwrap();
    let done = import::find(&db.pool, user, id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.processed, done.created, done.updated),
        ("done", 4_500, 4_500, 0)
    );
}

#[tokio::test]
async fn a_group_may_be_larger_than_the_listed_recipient_cap() {
    use ender_core::config::SmsConfig;
    use ender_core::sms::send::{SendError, SendRequest, validate};
    let db = test_db().await;
    let user = create_user(&db.pool, "school@example.org").await;
    let parents = repo::create_group(&db.pool, user, "Parents").await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let drafts: Vec<ContactDraft> = (0..8)
        .map(|i| draft(&format!("P{i}"), &format!("+1777000{i:04}"), &[]))
        .collect();
    repo::upsert_drafts(&mut conn, user, &drafts, OnDuplicate::Update, Some(parents.id))
        .await
        .unwrap();
    let cfg = SmsConfig {
        max_recipients: 5,
        ..SmsConfig::default()
    };
    let to_group = SendRequest {
        recipients: vec!["+17770000001".into()],
        group_ids: vec![parents.id.to_string()],
        body: "School closes at noon".into(),
        ..Default::default()
    };
    let v = validate(&db.pool, &cfg, user, &to_group).await.unwrap();
    assert_eq!(
        v.count(),
        8,
        "the listed number is also in the group: counted once"
    );
    let listed = SendRequest {
        recipients: (0..6).map(|i| format!("+1777000{i:04}")).collect(),
        body: "too many listed".into(),
        ..Default::default()
    };
    assert!(matches!(
        validate(&db.pool, &cfg, user, &listed).await,
        Err(SendError::TooManyRecipients(5))
    ));
}

/// The database itself refuses rows that tie one user's records to another's (defence in
/// depth behind the application's checks).
#[tokio::test]
async fn the_database_refuses_members_and_schedules_that_cross_users() {
    let db = test_db().await;
    let (a, b) = (
        create_user(&db.pool, "a@example.org").await,
        create_user(&db.pool, "b@example.org").await,
    );
    let group_a = repo::create_group(&db.pool, a, "A's").await.unwrap();
    let input = ContactInput::parse("Bea", "+15551230002", "", vec![]).unwrap();
    let contact_b = repo::create(&db.pool, b, &input).await.unwrap();
    let crossed = sqlx::query("INSERT INTO contact_group_members (group_id, contact_id) VALUES ($1, $2)")
        .bind(group_a.id.0)
        .bind(contact_b.id.0)
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(crossed.to_string().contains("group's owner"), "{crossed}");
    let contact_a = repo::create(&db.pool, a, &input).await.unwrap();
    sqlx::query("INSERT INTO contact_group_members (group_id, contact_id) VALUES ($1, $2)")
        .bind(group_a.id.0)
        .bind(contact_a.id.0)
        .execute(&db.pool)
        .await
        .unwrap();

    let template_b: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO message_templates (id, user_id, name, body) VALUES (gen_random_uuid(), $1, 'B', 'hi') RETURNING id",
    )
    .bind(b.0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let group_b = repo::create_group(&db.pool, b, "B's").await.unwrap();
    let insert = |template: Option<uuid::Uuid>, groups: Vec<uuid::Uuid>| {
        sqlx::query(
            "INSERT INTO scheduled_sends (id, user_id, kind, cron_expr, template_id, group_ids, body)
             VALUES (gen_random_uuid(), $1, 'recurring', '0 9 * * *', $2, $3, CASE WHEN $2 IS NULL THEN 'hi' ELSE '' END)",
        )
        .bind(a.0)
        .bind(template)
        .bind(groups)
        .execute(&db.pool)
    };
    let e = insert(Some(template_b), vec![]).await.unwrap_err();
    assert!(e.to_string().contains("template must belong"), "{e}");
    let e = insert(None, vec![group_a.id.0, group_b.id.0]).await.unwrap_err();
    assert!(e.to_string().contains("groups must belong"), "{e}");
    // Its own group, and a group id that no longer exists, are accepted.
    insert(None, vec![group_a.id.0, uuid::Uuid::now_v7()])
        .await
        .unwrap();
}
