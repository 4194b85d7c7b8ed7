//! Contacts, groups and imports on real PostgreSQL.

use ender_core::config::TenantLimits;
use ender_core::contact::import::{self, Settings, UploadError};
use ender_core::contact::import_csv::{ColumnMapping, ContactDraft};
use ender_core::contact::repo::{self, OnDuplicate};
use ender_core::contact::{ContactError, ContactInput, ContactQuery};
use ender_core::testing::{create_workspace, test_db};

static LIMITS: std::sync::LazyLock<TenantLimits> = std::sync::LazyLock::new(TenantLimits::default);

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
        create_workspace(&db.pool, "a@example.org").await,
        create_workspace(&db.pool, "b@example.org").await,
    );
    let input = ContactInput::parse("Ana", "+15551230001", "", vec![]).unwrap();
    let ana = repo::create(&db.pool, a, &input, LIMITS.max_contacts)
        .await
        .unwrap();
    assert!(matches!(
        repo::create(&db.pool, a, &input, LIMITS.max_contacts).await,
        Err(ContactError::DuplicateNumber(n)) if n == "+15551230001"
    ));
    // The same number is fine for another user.
    repo::create(&db.pool, b, &input, LIMITS.max_contacts)
        .await
        .unwrap();
    assert!(repo::find(&db.pool, b, ana.id).await.unwrap().is_none());
    assert!(matches!(
        repo::update(&db.pool, b, ana.id, &input).await,
        Err(ContactError::NotFound)
    ));
    assert_eq!(repo::delete(&db.pool, b, &[ana.id]).await.unwrap(), 0);
    // Another user's group cannot be joined.
    let bg = repo::create_group(&db.pool, b, "B's", LIMITS.max_groups)
        .await
        .unwrap();
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
        repo::create_group(&db.pool, b, "b's", LIMITS.max_groups).await,
        Err(ContactError::DuplicateGroup(_))
    ));
}

#[tokio::test]
async fn search_and_group_filters_count_correctly() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "s@example.org").await;
    let staff = repo::create_group(&db.pool, user, "Staff", LIMITS.max_groups)
        .await
        .unwrap();
    for i in 0..30 {
        let groups = if i % 3 == 0 { vec![staff.id] } else { vec![] };
        let input =
            ContactInput::parse(&format!("Person {i:02}"), &format!("+1555000{i:04}"), "", groups).unwrap();
        repo::create(&db.pool, user, &input, LIMITS.max_contacts)
            .await
            .unwrap();
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
    let user = create_workspace(&db.pool, "u@example.org").await;
    let target = repo::create_group(&db.pool, user, "Imported", LIMITS.max_groups)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let first = [
        draft("Ana", "+15550000001", &["Parents", "Year 5"]),
        draft("Ben", "+15550000002", &["parents"]),
    ];
    let counts = repo::upsert_drafts(
        &mut conn,
        user,
        &first,
        OnDuplicate::Update,
        Some(target.id),
        &LIMITS,
    )
    .await
    .unwrap();
    assert_eq!((counts.created, counts.updated, counts.skipped), (2, 0, 0));
    let again = [
        draft("Ana Maria", "+15550000001", &[]),
        draft("Cy", "+15550000003", &[]),
        draft("Cy 2", "+15550000003", &[]),
    ];
    let counts = repo::upsert_drafts(&mut conn, user, &again, OnDuplicate::Skip, None, &LIMITS)
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated, counts.skipped), (1, 0, 2));
    let counts = repo::upsert_drafts(&mut conn, user, &again[..1], OnDuplicate::Update, None, &LIMITS)
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
    let user = create_workspace(&db.pool, "imp@example.org").await;
    let mut csv = String::from("Name;Mobile;Notes\n");
    for i in 0..5_000 {
        csv.push_str(&format!("Person {i};+1555{i:07};note {i}\n"));
    }
    csv.push_str("Broken;12345;bad\n");
    let id = import::upload(&db.pool, user, "people.csv", csv.clone().into_bytes(), &LIMITS)
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
    let preview = import::preview(&db.pool, &found, &settings, 3, &LIMITS)
        .await
        .unwrap();
    assert_eq!(preview.rows.len(), 3);
    import::start(&db.pool, user, id, &settings, &LIMITS)
        .await
        .unwrap();
    assert!(
        import::start(&db.pool, user, id, &settings, &LIMITS)
            .await
            .is_err(),
        "starts once"
    );
    let (p1, p2) = (db.pool.clone(), db.pool.clone());
    let (r1, r2) = tokio::join!(
        import::run(&p1, user, id, &LIMITS),
        import::run(&p2, user, id, &LIMITS)
    );
    r1.unwrap();
    r2.unwrap();
    // Whichever runner lost a chunk stopped; the survivor (or a resume) finishes it.
    let mut done = import::find(&db.pool, user, id).await.unwrap().unwrap();
    if done.status == "running" {
        import::run(&db.pool, user, id, &LIMITS).await.unwrap();
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
    let other = create_workspace(&db.pool, "other@example.org").await;
    assert!(import::find(&db.pool, other, id).await.unwrap().is_none());
    assert!(import::errors_csv(&db.pool, other, id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stalled_import_is_resumed_from_where_it_stopped() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "stall@example.org").await;
    let mut csv = String::from("name,phone\n");
    for i in 0..4_500 {
        csv.push_str(&format!("P{i},+1666{i:07}\n"));
    }
    let id = import::upload(&db.pool, user, "p.csv", csv.clone().into_bytes(), &LIMITS)
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    import::start(&db.pool, user, id, &found.settings, &LIMITS)
        .await
        .unwrap();
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
    repo::upsert_drafts(&mut conn, user, &first, OnDuplicate::Update, None, &LIMITS)
        .await
        .unwrap();
    assert!(import::claim_stale(&db.pool, user, id).await.unwrap());
    assert!(
        !import::claim_stale(&db.pool, user, id).await.unwrap(),
        "a fresh heartbeat is not stale"
    );
    import::run(&db.pool, user, id, &LIMITS).await.unwrap();
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
    let user = create_workspace(&db.pool, "school@example.org").await;
    let parents = repo::create_group(&db.pool, user, "Parents", LIMITS.max_groups)
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let drafts: Vec<ContactDraft> = (0..8)
        .map(|i| draft(&format!("P{i}"), &format!("+1777000{i:04}"), &[]))
        .collect();
    repo::upsert_drafts(
        &mut conn,
        user,
        &drafts,
        OnDuplicate::Update,
        Some(parents.id),
        &LIMITS,
    )
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

/// The database itself refuses rows that tie one workspace's records to another's (defence
/// in depth behind the application's checks): composite foreign keys on (workspace_id, id),
/// and the trigger for a schedule's array of groups.
#[tokio::test]
async fn the_database_refuses_members_and_schedules_that_cross_workspaces() {
    let db = test_db().await;
    let (a, b) = (
        create_workspace(&db.pool, "a@example.org").await,
        create_workspace(&db.pool, "b@example.org").await,
    );
    let group_a = repo::create_group(&db.pool, a, "A's", LIMITS.max_groups)
        .await
        .unwrap();
    let input = ContactInput::parse("Bea", "+15551230002", "", vec![]).unwrap();
    let contact_b = repo::create(&db.pool, b, &input, LIMITS.max_contacts)
        .await
        .unwrap();
    let member = "INSERT INTO contact_group_members (workspace_id, group_id, contact_id) VALUES ($1, $2, $3)";
    for (workspace, fkey) in [
        (a, "contact_group_members_contact_fkey"),
        (b, "contact_group_members_group_fkey"),
    ] {
        let crossed = sqlx::query(member)
            .bind(workspace.0)
            .bind(group_a.id.0)
            .bind(contact_b.id.0)
            .execute(&db.pool)
            .await
            .unwrap_err();
        assert!(crossed.to_string().contains(fkey), "{crossed}");
    }
    let contact_a = repo::create(&db.pool, a, &input, LIMITS.max_contacts)
        .await
        .unwrap();
    sqlx::query(member)
        .bind(a.0)
        .bind(group_a.id.0)
        .bind(contact_a.id.0)
        .execute(&db.pool)
        .await
        .unwrap();

    let template_b: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO message_templates (id, workspace_id, name, body) VALUES (gen_random_uuid(), $1, 'B', 'hi') RETURNING id",
    )
    .bind(b.0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let group_b = repo::create_group(&db.pool, b, "B's", LIMITS.max_groups)
        .await
        .unwrap();
    let insert = |template: Option<uuid::Uuid>, groups: Vec<uuid::Uuid>| {
        sqlx::query(
            "INSERT INTO scheduled_sends (id, workspace_id, kind, cron_expr, template_id, group_ids, body)
             VALUES (gen_random_uuid(), $1, 'recurring', '0 9 * * *', $2, $3, CASE WHEN $2 IS NULL THEN 'hi' ELSE '' END)",
        )
        .bind(a.0)
        .bind(template)
        .bind(groups)
        .execute(&db.pool)
    };
    let e = insert(Some(template_b), vec![]).await.unwrap_err();
    assert!(e.to_string().contains("scheduled_sends_template_fkey"), "{e}");
    let e = insert(None, vec![group_a.id.0, group_b.id.0]).await.unwrap_err();
    assert!(e.to_string().contains("groups must belong"), "{e}");
    // Its own group, and a group id that no longer exists, are accepted.
    insert(None, vec![group_a.id.0, uuid::Uuid::now_v7()])
        .await
        .unwrap();
}

/// Uploads a file, starts it with the guessed settings and runs it to its end.
async fn import_whole(
    pool: &sqlx::PgPool,
    user: ender_core::workspace::WorkspaceId,
    name: &str,
    bytes: Vec<u8>,
    limits: &TenantLimits,
) -> import::Import {
    let id = import::upload(pool, user, name, bytes, limits).await.unwrap();
    let found = import::find(pool, user, id).await.unwrap().unwrap();
    import::start(pool, user, id, &found.settings, limits)
        .await
        .unwrap();
    import::run(pool, user, id, limits).await.unwrap();
    import::find(pool, user, id).await.unwrap().unwrap()
}

fn phones_csv(rows: usize) -> Vec<u8> {
    let mut csv = String::from("name,phone\n");
    for i in 0..rows {
        csv.push_str(&format!("P{i},+1888{i:07}\n"));
    }
    csv.into_bytes()
}

#[tokio::test]
async fn imports_past_a_limit_are_refused_naming_it() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "caps@example.org").await;
    let limits = TenantLimits {
        import_max_rows: 10,
        import_max_fields: 3,
        import_max_field_chars: 20,
        ..TenantLimits::default()
    };
    let refused = |r: Result<import::ImportId, UploadError>| match r {
        Err(UploadError::File(e)) => e.to_string(),
        other => panic!("expected a refused file, got {other:?}"),
    };
    assert!(
        import::upload(&db.pool, user, "ok.csv", phones_csv(10), &limits)
            .await
            .is_ok()
    );
    let message = refused(import::upload(&db.pool, user, "big.csv", phones_csv(11), &limits).await);
    assert_eq!(
        message,
        "The file has more than 10 rows, the most one import may hold (ENDER_IMPORT_MAX_ROWS). Split it into smaller files."
    );
    let wide = b"name,phone\nAna,+15551234567\nBo,+15551234568,a,b\n".to_vec();
    let message = refused(import::upload(&db.pool, user, "wide.csv", wide, &limits).await);
    assert!(
        message.starts_with("Line 3: this row has more than 3 columns"),
        "{message}"
    );
    assert!(message.contains("ENDER_IMPORT_MAX_FIELDS"), "{message}");
    let long = format!("name,phone\n{},+15551234567\n", "é".repeat(21)).into_bytes();
    let message = refused(import::upload(&db.pool, user, "long.csv", long, &limits).await);
    assert!(
        message.starts_with("Line 2: a value is longer than 20 characters"),
        "{message}"
    );
    assert!(message.contains("ENDER_IMPORT_MAX_FIELD_CHARS"), "{message}");
    // 20 characters of two bytes each is within the limit.
    let fits = format!("name,phone\n{},+15551234567\n", "é".repeat(20)).into_bytes();
    assert!(
        import::upload(&db.pool, user, "fits.csv", fits, &limits)
            .await
            .is_ok()
    );
    let cards: String = (0..11)
        .map(|i| format!("BEGIN:VCARD\nFN:P{i}\nTEL:+1555000{i:04}\nEND:VCARD\n"))
        .collect();
    let message = refused(import::upload(&db.pool, user, "c.vcf", cards.into_bytes(), &limits).await);
    assert!(
        message.starts_with("The file has more than 10 cards"),
        "{message}"
    );
    let phones: String = (0..4).map(|i| format!("TEL:+1555000{i:04}\n")).collect();
    let card = format!("BEGIN:VCARD\nFN:Many\n{phones}END:VCARD\n");
    let message = refused(import::upload(&db.pool, user, "m.vcf", card.into_bytes(), &limits).await);
    assert!(
        message.starts_with("Line 1: this card has more than 3 phone numbers"),
        "{message}"
    );
}

#[tokio::test]
async fn a_user_holds_at_most_the_open_import_limit_even_uploading_at_once() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "open@example.org").await;
    let limits = TenantLimits {
        max_open_imports: 3,
        ..TenantLimits::default()
    };
    let uploads = (0..6).map(|i| {
        let (pool, limits) = (db.pool.clone(), limits.clone());
        tokio::spawn(async move {
            import::upload(&pool, user, &format!("f{i}.csv"), phones_csv(5), &limits).await
        })
    });
    let mut ok = Vec::new();
    let mut refused = 0;
    for upload in uploads {
        match upload.await.unwrap() {
            Ok(id) => ok.push(id),
            Err(UploadError::TooManyOpen(3)) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((ok.len(), refused), (3, 3));
    let message = import::upload(&db.pool, user, "x.csv", phones_csv(5), &limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("ENDER_MAX_OPEN_IMPORTS"), "{message}");
    assert_eq!(import::open_imports(&db.pool, user).await.unwrap().len(), 3);
    // Another user's import cannot be discarded; discarding one's own frees a place.
    let other = create_workspace(&db.pool, "other-open@example.org").await;
    assert!(!import::discard(&db.pool, other, ok[0]).await.unwrap());
    assert!(import::discard(&db.pool, user, ok[0]).await.unwrap());
    assert!(import::find(&db.pool, user, ok[0]).await.unwrap().is_none());
    let fourth = import::upload(&db.pool, user, "y.csv", phones_csv(5), &limits)
        .await
        .unwrap();
    // A finished import no longer counts, and its file is not kept.
    let found = import::find(&db.pool, user, fourth).await.unwrap().unwrap();
    import::start(&db.pool, user, fourth, &found.settings, &limits)
        .await
        .unwrap();
    assert!(
        !import::discard(&db.pool, user, fourth).await.unwrap(),
        "a running import is not discarded"
    );
    import::run(&db.pool, user, fourth, &limits).await.unwrap();
    let content: String = sqlx::query_scalar("SELECT content FROM contact_imports WHERE id = $1")
        .bind(fourth.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(content, "");
    assert!(
        import::upload(&db.pool, user, "z.csv", phones_csv(5), &limits)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_import_into_another_users_group_is_refused() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "mine@example.org").await;
    let other = create_workspace(&db.pool, "theirs@example.org").await;
    let theirs = repo::create_group(&db.pool, other, "Theirs", LIMITS.max_groups)
        .await
        .unwrap();
    let id = import::upload(&db.pool, user, "p.csv", phones_csv(3), &LIMITS)
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    let settings = Settings {
        group: Some(theirs.id),
        ..found.settings.clone()
    };
    assert!(matches!(
        import::start(&db.pool, user, id, &settings, &LIMITS).await,
        Err(UploadError::GroupNotFound)
    ));
    let (theirs_now, _) = repo::list_groups(&db.pool, other, 0, 10).await.unwrap();
    assert_eq!(theirs_now[0].members, 0);
    assert_eq!(
        import::find(&db.pool, user, id).await.unwrap().unwrap().status,
        "preview"
    );
}

#[tokio::test]
async fn the_preview_keeps_the_first_rows_and_counts_the_rest() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "preview@example.org").await;
    let id = import::upload(&db.pool, user, "p.csv", phones_csv(7_000), &LIMITS)
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    let preview = import::preview(&db.pool, &found, &found.settings, 5, &LIMITS)
        .await
        .unwrap();
    assert_eq!(
        (preview.rows.len(), preview.drafts.len(), preview.total_rows),
        (5, 5, 7_000)
    );
    assert_eq!(preview.headers, ["name", "phone"]);
    assert_eq!(preview.rows[4], ["P4", "+18880000004"]);
    // A vCard of several numbers per card gives one contact per number, across chunks.
    let cards: String = (0..1_500)
        .map(|i| {
            format!("BEGIN:VCARD\nFN:C{i}\nTEL;TYPE=cell:+1999{i:07}\nTEL;TYPE=work:+1998{i:07}\nEND:VCARD\n")
        })
        .collect();
    let id = import::upload(&db.pool, user, "c.vcf", cards.into_bytes(), &LIMITS)
        .await
        .unwrap();
    let found = import::find(&db.pool, user, id).await.unwrap().unwrap();
    assert_eq!(found.total_rows, 1_500);
    import::start(&db.pool, user, id, &found.settings, &LIMITS)
        .await
        .unwrap();
    assert_eq!(
        import::find(&db.pool, user, id)
            .await
            .unwrap()
            .unwrap()
            .total_rows,
        3_000
    );
    import::run(&db.pool, user, id, &LIMITS).await.unwrap();
    let done = import::find(&db.pool, user, id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.processed, done.created),
        ("done", 3_000, 3_000)
    );
}

#[tokio::test]
async fn contacts_groups_and_templates_stop_at_their_limits_even_created_at_once() {
    use ender_core::template::{TemplateInput, TemplateStoreError, repo as templates};
    let db = test_db().await;
    let user = create_workspace(&db.pool, "limits@example.org").await;
    let creates = (0..10).map(|i| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let input = ContactInput::parse("P", &format!("+4477009002{i:02}"), "", vec![]).unwrap();
            repo::create(&pool, user, &input, 4).await
        })
    });
    let mut made = 0;
    for c in creates {
        match c.await.unwrap() {
            Ok(_) => made += 1,
            Err(e @ ContactError::TooManyContacts(4)) => {
                assert_eq!(
                    e.to_string(),
                    "This workspace can keep at most 4 contacts (ENDER_MAX_CONTACTS). Delete some first."
                )
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(made, 4);
    // A number already there is still a duplicate at the limit.
    let known: String =
        sqlx::query_scalar("SELECT phone_number FROM contacts WHERE workspace_id = $1 LIMIT 1")
            .bind(user.0)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let again = ContactInput::parse("P", &known, "", vec![]).unwrap();
    assert!(matches!(
        repo::create(&db.pool, user, &again, 4).await,
        Err(ContactError::DuplicateNumber(_))
    ));
    repo::create_group(&db.pool, user, "One", 1).await.unwrap();
    assert!(matches!(
        repo::create_group(&db.pool, user, "Two", 1).await,
        Err(ContactError::TooManyGroups(1))
    ));
    assert!(matches!(
        repo::create_group(&db.pool, user, "one", 1).await,
        Err(ContactError::DuplicateGroup(_))
    ));
    let input = TemplateInput::parse("T1", "Hi").unwrap();
    templates::create(&db.pool, user, &input, 1).await.unwrap();
    let input = TemplateInput::parse("T2", "Hi").unwrap();
    assert!(matches!(
        templates::create(&db.pool, user, &input, 1).await,
        Err(TemplateStoreError::TooMany(1))
    ));
    // Another user counts their own.
    let other = create_workspace(&db.pool, "unlimited@example.org").await;
    repo::create(&db.pool, other, &again, 4).await.unwrap();
}

#[tokio::test]
async fn an_import_stops_at_the_contact_and_group_limits_keeping_what_fit() {
    let db = test_db().await;
    let user = create_workspace(&db.pool, "full@example.org").await;
    let limits = TenantLimits {
        max_contacts: 2_500,
        max_groups: 2,
        ..TenantLimits::default()
    };
    let mut csv = String::from("name,phone,groups\n");
    for i in 0..3_000 {
        csv.push_str(&format!("P{i},+1777{i:07},G{}\n", i % 2));
    }
    let done = import_whole(&db.pool, user, "p.csv", csv.into_bytes(), &limits).await;
    assert_eq!(done.status, "failed");
    assert!(
        done.error_message
            .starts_with("This workspace can keep at most 2500 contacts (ENDER_MAX_CONTACTS)."),
        "{}",
        done.error_message
    );
    assert_eq!((done.created, done.processed), (2_500, 3_000));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE workspace_id = $1")
        .bind(user.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2_500);
    // Re-importing known numbers still updates them at the limit.
    let csv = "name,phone\nRenamed,+17770000001\n".as_bytes().to_vec();
    let done = import_whole(&db.pool, user, "again.csv", csv, &limits).await;
    assert_eq!((done.status.as_str(), done.updated), ("done", 1));

    // Groups named in rows are created while they fit; the import then says which limit.
    let user = create_workspace(&db.pool, "groups@example.org").await;
    let csv = "name,phone,groups\nA,+17880000001,G1\nB,+17880000002,G2\nC,+17880000003,G3\n";
    let done = import_whole(&db.pool, user, "g.csv", csv.as_bytes().to_vec(), &limits).await;
    assert_eq!(done.status, "failed");
    assert!(
        done.error_message
            .starts_with("This workspace can keep at most 2 groups (ENDER_MAX_GROUPS)."),
        "{}",
        done.error_message
    );
    let (groups, total) = repo::list_groups(&db.pool, user, 0, 10).await.unwrap();
    assert_eq!((total, groups.len()), (2, 2));
}
