//! Outgoing mail against a real SMTP server on loopback: the sender an administrator saved
//! is used, and a mail the server refuses is recorded (without its recipient) for Health.

use std::sync::{Arc, Mutex};

use ender_core::config::MailConfig;
use ender_core::mail::{Mail, Mailer};
use ender_core::testing::test_db;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What the server heard: each transaction's envelope sender and its data.
#[derive(Default)]
struct Heard {
    senders: Vec<String>,
    data: Vec<String>,
}

/// A minimal SMTP server: accepts every transaction, except that it refuses recipients
/// whose address starts with `reject`.
async fn smtp_server() -> (u16, Arc<Mutex<Heard>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heard = Arc::new(Mutex::new(Heard::default()));
    let h = heard.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        h.lock().unwrap().senders.push(line[10..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        if upper.contains("<REJECT") {
                            b"550 5.1.1 <reject@example.org>: mailbox unavailable\r\n"
                        } else {
                            b"250 OK\r\n"
                        }
                    } else if upper == "DATA" {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        h.lock().unwrap().data.push(data);
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, heard)
}

fn mail(to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "Reset your password".to_owned(),
        text: "The link.".to_owned(),
    }
}

#[tokio::test]
async fn mail_uses_the_saved_sender_and_failures_are_recorded_without_the_recipient() {
    let db = test_db().await;
    let (port, heard) = smtp_server().await;
    let cfg = MailConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}").into()),
        mail_from: "Ender <ender@localhost>".to_owned(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::from_config(&cfg, dir.path())
        .unwrap()
        .with_database(db.pool.clone());

    // Nothing saved: the configured sender.
    mailer.send(&mail("ada@example.org")).await.unwrap();
    // Saved on the Settings page: that name and address.
    sqlx::query(
        "INSERT INTO instance_settings (key, value) VALUES ('mail_from_name', 'Clinic Desk'), ('mail_from_address', 'desk@clinic.example')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    mailer.send(&mail("ada@example.org")).await.unwrap();
    {
        let heard = heard.lock().unwrap();
        assert_eq!(heard.senders, ["<ender@localhost>", "<desk@clinic.example>"]);
        assert!(
            heard.data[0].contains("From: Ender <ender@localhost>"),
            "{}",
            heard.data[0]
        );
        assert!(
            heard.data[1].contains("Clinic Desk") && heard.data[1].contains("<desk@clinic.example>"),
            "{}",
            heard.data[1]
        );
    }
    let mut conn = db.pool.acquire().await.unwrap();
    let (failures, total) = ender_core::mail::recent_failures(&mut conn, 10).await.unwrap();
    assert!(failures.is_empty());
    assert_eq!(total, 0);

    // Refused by the server: an error for the caller, a line for the Health page.
    assert!(mailer.send(&mail("reject@example.org")).await.is_err());
    // A malformed address never reaches the server and is recorded too.
    assert!(mailer.send(&mail("not an address")).await.is_err());
    let (failures, total) = ender_core::mail::recent_failures(&mut conn, 10).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(failures.len(), 2);
    for f in &failures {
        assert_eq!(f.subject, "Reset your password");
        assert!(!f.error.is_empty());
        assert!(!f.error.contains("reject@example.org"), "{}", f.error);
        assert!(!f.error.contains("not an address"), "{}", f.error);
    }
    assert!(
        failures[1].error.contains("550") || failures[1].error.contains("mailbox"),
        "{}",
        failures[1].error
    );
    let health = ender_core::admin::health::read(&db.pool, dir.path())
        .await
        .unwrap();
    assert_eq!(health.mail_failures, 2);

    // Mail to files (no SMTP) carries the sender too.
    let files = Mailer::files(dir.path().join("mail")).with_database(db.pool.clone());
    files.send(&mail("ada@example.org")).await.unwrap();
    let written = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(written.path()).unwrap();
    let from = text.lines().next().unwrap();
    assert!(
        from.starts_with("From: ") && from.contains("Clinic Desk") && from.ends_with("<desk@clinic.example>"),
        "{text}"
    );
}
