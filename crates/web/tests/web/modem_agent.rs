//! End to end with a USB modem, simulated: the real `ender-web` binary (web and embedded
//! worker) on a test database, the modem agent in-process, and the simulated modem on a
//! pseudo-terminal. A message sent through the API goes out as PDUs and is reported
//! `sent`, then `delivered` on `+CDS`; a received SMS reaches the Inbox before it leaves
//! the SIM; the dashboard shows the modem online with its signal; and Ender killed and
//! restarted mid-way loses and duplicates nothing. Nothing either process logs, at debug
//! level, carries a phone number or a message body.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ender_modem_agent::agent::{self, AgentOptions};
use ender_modem_agent::config::Config;
use ender_modem_agent::pdu::{self, Pdu};
use ender_modem_agent::server::Backoff;
use ender_modem_agent::sim::{SentSms, SimModem, SimOptions};
use ender_modem_agent::task::TaskOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::helpers::{client, select_attr, select_text};

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(30);
const PW: &str = "modem owner password";
/// Numbers no other test uses, so that the log check finds only this test's lines.
const TO: &str = "+15550142857";
const FROM: &str = "+15550171828";
const MODEM_NUMBER: &str = "+15550186420";
/// Three GSM-7 parts.
const LONG: &str = "Ender relays SMS between phones and the web. This message is long \
enough to need three parts when sent in the GSM 7-bit alphabet, since one part holds 153 \
characters once the concatenation header takes its share. The agent splits it, the network \
carries each part, and the recipient's phone joins them again by reference and sequence.";

/// `ender-web` as a process of its own, so that it can be killed and started again.
struct Ender {
    port: u16,
    db_url: String,
    data_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Ender {
    async fn start(db_url: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ender = Self {
            port,
            db_url,
            data_dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        ender.restart().await;
        ender
    }

    /// Where the process writes its log (both outputs, across restarts).
    fn log_path(&self) -> std::path::PathBuf {
        self.data_dir.path().join("ender.log")
    }

    /// Starts the process (again, on the same port, database and data folder) and waits
    /// until it answers.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "ender-web is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ender-web"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db_url)
            .env("ENDER_DATA_DIR", self.data_dir.path())
            .env("ENDER_SECRET_KEYS", ender_core::testing::TEST_SECRET_KEYS)
            .env("ENDER_BIND", format!("127.0.0.1:{}", self.port))
            .env("ENDER_PUBLIC_URL", self.url(""))
            .env("ENDER_EMBEDDED_WORKER", "true")
            .env("ENDER_DB_MAX_CONNECTIONS", "5")
            .env(
                "RUST_LOG",
                "debug,sqlx=info,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,apalis=info",
            )
            .env("ENDER_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let http = reqwest::Client::new();
        let health = self.url("/healthz");
        eventually("ender-web answers its health check", || async {
            http.get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    }

    /// Kills the process outright, as a crash or a power cut would.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("ender-web is running");
        child.start_kill().unwrap();
        tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("ender-web dies when killed")
            .unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Polls `check` until it holds, failing the test after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The account's integration key, for the user API.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        match self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
        {
            Ok(res) => (res.status(), res.json().await.unwrap_or(Value::Null)),
            // Ender is restarting.
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Value::Null),
        }
    }

    /// Sends one SMS. A 503 (the server's database busy, as on a loaded CI machine) is
    /// retried with the same Idempotency-Key, as a careful client does: it can never send
    /// twice.
    async fn send(&self, body: &str) -> String {
        let key = uuid::Uuid::now_v7().to_string();
        let mut last = StatusCode::SERVICE_UNAVAILABLE;
        for _ in 0..20 {
            let res = self
                .http
                .post(format!("{}/api/sms/send", self.base))
                .header("x-api-key", &self.key)
                .header("idempotency-key", &key)
                .json(&json!({"recipients": [TO], "body": body}))
                .send()
                .await
                .unwrap();
            last = res.status();
            if last == StatusCode::OK {
                let answer: Value = res.json().await.unwrap();
                return answer["message_ids"][0].as_str().unwrap().to_owned();
            }
            assert_eq!(last, StatusCode::SERVICE_UNAVAILABLE, "sending {body:?}");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        panic!("sending {body:?} kept failing: {last}");
    }

    async fn status_of(&self, id: &str) -> String {
        let (_, body) = self.get(&format!("/api/sms/status/{id}")).await;
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    async fn wait_status(&self, id: &str, wanted: &str) {
        eventually(&format!("message {id} becomes {wanted}"), || async {
            self.status_of(id).await == wanted
        })
        .await;
    }
}

/// The modem's SMS-SUBMITs from `from` on, decoded again from the PDUs as written, with
/// the parts of each message joined: (recipient, text, references).
fn sent_messages(sent: &[SentSms]) -> Vec<(String, String, Vec<u8>)> {
    let mut messages: Vec<(String, String, Vec<u8>)> = Vec::new();
    for sms in sent {
        let Ok(Pdu::Submit(submit)) = pdu::decode(&sms.pdu) else {
            panic!("not an SMS-SUBMIT: {}", sms.pdu);
        };
        assert_eq!(submit, sms.submit);
        assert!(submit.status_report_requested, "a status report is asked for");
        let text = submit.body().as_text().unwrap().to_owned();
        let to = submit.destination.to_string();
        match submit.concat() {
            Some(concat) if concat.sequence > 1 => {
                let last = messages.last_mut().expect("a first part came before");
                last.1.push_str(&text);
                last.2.push(sms.mr);
            }
            _ => messages.push((to, text, vec![sms.mr])),
        }
    }
    messages
}

async fn incoming_count(pool: &PgPool, body: &str) -> i64 {
    let texts = ender_core::testing::message_texts(pool).await;
    texts
        .iter()
        .filter(|(dir, _, text)| dir == "incoming" && text == body)
        .count() as i64
}

async fn delivered_events(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM message_events WHERE message_id = $1::uuid AND status = 'delivered'",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn agent_options() -> AgentOptions {
    AgentOptions {
        task: TaskOptions {
            sweep_every: Duration::from_millis(300),
            status_every: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            ..TaskOptions::default()
        },
        backoff: Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(500),
            Duration::from_secs(60),
        ),
        heartbeat_every: Duration::from_secs(1),
        ..AgentOptions::default()
    }
}

fn outbox_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("dongle-1/outbox"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_usb_modem_relays_both_ways_across_a_restart_of_ender() {
    let logs = crate::logs::capture();
    let db = ender_core::testing::test_db().await;
    let pool = db.pool.clone();
    let mut ender = Ender::start(db.url()).await;

    // The owner, their integration key and the modem, as the dashboard would make them.
    let email = "modem-owner@example.org";
    let user = ender_core::account::sign_up(
        &pool,
        &ender_core::account::Email::parse(email).unwrap(),
        &ender_core::account::Password::parse(PW, "password").unwrap(),
        &ender_core::account::FullName::parse("Modem Owner").unwrap(),
        false,
    )
    .await
    .unwrap()
    .user
    .id;
    let user = ender_core::testing::personal_workspace(&pool, user).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: ender.url(""),
        key: ender_core::apikey::create(
            &pool,
            user,
            None,
            "e2e",
            ender_core::apikey::Scopes::all(),
            None,
            10,
        )
        .await
        .unwrap()
        .secret,
    };
    let input = ender_core::device::DeviceInput::parse("USB dongle", "modem", MODEM_NUMBER).unwrap();
    let device = ender_core::device::create(&pool, user, &input, 10).await.unwrap();
    let device_id = device.device.id.to_string();
    sqlx::query("UPDATE devices SET per_minute_limit = 1000, per_day_limit = 10000 WHERE id = $1::uuid")
        .bind(&device_id)
        .execute(&pool)
        .await
        .unwrap();

    // The modem and its agent, configured as the README says.
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let text = format!(
        "server = \"{}\"\n\n[[modem]]\nname = \"dongle-1\"\nkey = \"{}\"\nport = \"{}\"\n",
        ender.url(""),
        device.secret,
        sim.port()
    );
    let config = Config::parse(Path::new("modem-agent.toml"), &text, Vec::new()).unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(agent::run_with(
        config,
        agent_data.path().to_owned(),
        agent_options(),
        shutdown.clone(),
    ));

    // Online, with its signal (rssi 20 is -73 dBm), in the API and on the devices page.
    eventually(
        "the modem is online with its signal in GET /api/devices",
        || async {
            let (_, list) = api.get("/api/devices").await;
            let d = &list["items"][0];
            d["online"] == true && d["signal_dbm"] == -73 && d["operator"] == "Ender Mobile"
        },
    )
    .await;
    let browser = client();
    let login = browser.get(ender.url("/login")).send().await.unwrap();
    let csrf = select_attr(&login.text().await.unwrap(), "meta[name=csrf-token]", "content").unwrap();
    let res = browser
        .post(ender.url("/login"))
        .form(&[("_csrf", csrf.as_str()), ("email", email), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in");
    let html = browser
        .get(ender.url("/devices"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = format!("#devices tr[data-device=\"{device_id}\"]");
    assert!(
        select_text(&html, &format!("{row} .badge")).contains(&"online".to_owned()),
        "{html}"
    );
    let radio = select_text(&html, &format!("{row} td.radio")).join(" ");
    assert!(
        radio.contains("-73 dBm") && radio.contains("Ender Mobile"),
        "{radio}"
    );

    // Out: one part, `sent`, then `delivered` on its status report.
    let short = api.send("Hello from Ender").await;
    eventually("the modem is given the short message", || async {
        !sim.sent().is_empty()
    })
    .await;
    api.wait_status(&short, "sent").await;
    let messages = sent_messages(&sim.sent());
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0].0.as_str(), messages[0].1.as_str()),
        (TO, "Hello from Ender")
    );
    sim.emit_status_report(messages[0].2[0], 0).unwrap();
    api.wait_status(&short, "delivered").await;

    // A long one goes out in three parts.
    let long = api.send(LONG).await;
    api.wait_status(&long, "sent").await;
    let messages = sent_messages(&sim.sent());
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[1].0.as_str(), messages[1].1.as_str()), (TO, LONG));
    let long_refs = messages[1].2.clone();
    assert_eq!(long_refs.len(), 3);

    // In: it reaches the Inbox, and only then leaves the SIM.
    sim.inject_sms(FROM, "Hi Ender").unwrap();
    eventually("the received SMS is deleted from the SIM", || async {
        sim.stored().is_empty()
    })
    .await;
    assert_eq!(
        incoming_count(&pool, "Hi Ender").await,
        1,
        "stored before deleted"
    );
    let (_, list) = api.get("/api/sms/messages").await;
    let items = list["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|m| m["message_type"] == "incoming" && m["body"] == "Hi Ender" && m["from_number"] == FROM),
        "{list}"
    );
    let inbox = browser
        .get(ender.url("/messages?tab=inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = select_text(&inbox, "#message-rows tr[data-message]").join("\n");
    assert!(rows.contains("Hi Ender"), "{rows}");

    // Ender goes down. Meanwhile the long message is delivered and another SMS comes in.
    ender.kill().await;
    for mr in &long_refs {
        sim.emit_status_report(*mr, 0).unwrap();
    }
    sim.inject_sms(FROM, "While you were away").unwrap();
    eventually("the delivery report is queued on disk", || async {
        outbox_files(agent_data.path()) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sim.stored().len(),
        1,
        "the SMS stays on the SIM while Ender is away"
    );

    // Back up: the report and the SMS arrive, once each.
    ender.restart().await;
    api.wait_status(&long, "delivered").await;
    eventually("the SMS received meanwhile reaches Ender", || async {
        incoming_count(&pool, "While you were away").await == 1
    })
    .await;
    eventually("that SMS is deleted from the SIM", || async {
        sim.stored().is_empty()
    })
    .await;
    eventually("the outbox drains", || async {
        outbox_files(agent_data.path()) == 0
    })
    .await;

    // And sending works again, once.
    let after = api.send("Back again").await;
    api.wait_status(&after, "sent").await;
    // Give a repeat every chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = sent_messages(&sim.sent());
    let texts: Vec<&str> = messages.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(
        texts,
        ["Hello from Ender", LONG, "Back again"],
        "nothing sent twice"
    );
    assert_eq!(incoming_count(&pool, "Hi Ender").await, 1);
    assert_eq!(incoming_count(&pool, "While you were away").await, 1);
    for id in [&short, &long] {
        assert_eq!(
            delivered_events(&pool, id).await,
            1,
            "one delivered event for {id}"
        );
        assert_eq!(api.status_of(id).await, "delivered");
    }

    shutdown.cancel();
    let stopped = tokio::time::timeout(WAIT, agent)
        .await
        .expect("the agent stops on shutdown")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    ender.kill().await;

    // No number and no body in any log line: the server's (debug level) and the agent's.
    let server_log = std::fs::read_to_string(ender.log_path()).unwrap();
    let agent_log = logs.text();
    assert!(
        server_log.contains("Ender is serving"),
        "the server's log was captured: {server_log}"
    );
    assert!(
        agent_log.contains("connected to Ender"),
        "the agent's log was captured"
    );
    let secrets = [
        TO,
        FROM,
        MODEM_NUMBER,
        "Hello from Ender",
        "Hi Ender",
        "While you were away",
        "Back again",
        "alphabet, since one part",
    ];
    for (whose, text) in [("ender-web", server_log), ("the agent", agent_log)] {
        let found = crate::logs::leaked(&text, &secrets);
        assert!(found.is_empty(), "{whose} logged {found:?}:\n{text}");
    }
}
