//! The modem driver against the simulated modem over a real pseudo-terminal.

use std::time::{Duration, Instant};

use ender_modem_agent::modem::{
    Modem, ModemError, ModemEvent, ModemOptions, Profile, Registration, SendFailure, Signal, Slot, Timeouts,
};
use ender_modem_agent::pdu::{Body, DeliveryStatus, Reassembler, encode_submit};
use ender_modem_agent::sim::{Fault, SimModem, SimOptions, deliver_pdus};

use crate::{LONG_TEXT, within};

const T: Duration = Duration::from_millis(400);

fn options() -> ModemOptions {
    ModemOptions {
        name: "sim".to_owned(),
        timeouts: Timeouts::all(T),
        ..ModemOptions::default()
    }
}

async fn open_with(sim: &SimModem, options: ModemOptions) -> Modem {
    Modem::open(&sim.port(), 115_200, None, options).await.unwrap()
}

async fn ready(sim: &SimModem) -> Modem {
    let mut modem = open_with(sim, options()).await;
    modem.init(None).await.unwrap();
    modem
}

/// Waits for the next SMS event, skipping URCs that give none.
async fn next_event(modem: &mut Modem) -> ModemEvent {
    within(Duration::from_secs(5), async {
        loop {
            if let Some(event) = modem.next_events().await.unwrap().into_iter().next() {
                return event;
            }
        }
    })
    .await
}

fn incoming(event: ModemEvent) -> ender_modem_agent::modem::IncomingSms {
    match event {
        ModemEvent::Incoming(sms) => sms,
        other => panic!("expected an incoming SMS, got {other:?}"),
    }
}

#[tokio::test]
async fn init_puts_the_modem_in_pdu_mode_with_indications() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    assert!(sim.pdu_mode());
    assert_eq!(sim.cnmi(), [2, 1, 0, 1, 0]);
    assert_eq!(sim.pin_attempts(), 0);
    assert_eq!(
        modem.signal().await.unwrap(),
        Signal {
            rssi: Some(20),
            dbm: Some(-73)
        }
    );
    assert_eq!(modem.registration().await.unwrap(), Registration::Home);
    assert_eq!(modem.operator().await.unwrap().as_deref(), Some("Ender Mobile"));
}

#[tokio::test]
async fn registration_falls_back_to_lte_and_reports_roaming() {
    let sim = SimModem::start(SimOptions {
        creg: 0,
        cereg: Some(5),
        rssi: 99,
        operator: None,
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = ready(&sim).await;
    assert_eq!(modem.registration().await.unwrap(), Registration::Roaming);
    assert_eq!(
        modem.signal().await.unwrap(),
        Signal {
            rssi: None,
            dbm: None
        }
    );
    assert_eq!(modem.operator().await.unwrap(), None);
}

#[tokio::test]
async fn the_right_pin_unlocks_the_sim_once() {
    let sim = SimModem::start(SimOptions {
        pin: Some("1234".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = open_with(&sim, options()).await;
    modem.init(Some("1234")).await.unwrap();
    assert_eq!(sim.pin_attempts(), 1);
    // A reset finds the SIM unlocked and sends no PIN.
    modem.reset().await.unwrap();
    assert_eq!(sim.pin_attempts(), 1);
    assert!(sim.pdu_mode());
}

#[tokio::test]
async fn a_sim_asking_for_a_pin_without_one_configured_is_fatal() {
    let sim = SimModem::start(SimOptions {
        pin: Some("1234".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = open_with(&sim, options()).await;
    let error = modem.init(None).await.unwrap_err();
    assert_eq!(error, ModemError::PinRequired);
    assert!(error.is_fatal());
    assert_eq!(sim.pin_attempts(), 0);
}

#[tokio::test]
async fn a_wrong_pin_is_fatal_and_never_sent_twice() {
    let sim = SimModem::start(SimOptions {
        pin: Some("1234".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = open_with(&sim, options()).await;
    let error = modem.init(Some("0000")).await.unwrap_err();
    assert!(matches!(error, ModemError::WrongPin { .. }), "{error}");
    assert!(error.is_fatal());
    assert!(error.to_string().contains("incorrect password"), "{error}");
    assert!(!error.to_string().contains("0000"), "{error}");
    assert!(modem.init(Some("0000")).await.unwrap_err().is_fatal());
    assert!(modem.reset().await.unwrap_err().is_fatal());
    assert_eq!(sim.pin_attempts(), 1);
}

#[tokio::test]
async fn three_wrong_pins_lock_the_sim_and_then_it_asks_for_the_puk() {
    let sim = SimModem::start(SimOptions {
        pin: Some("1234".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    // Three separate agents, each trying once, as three restarts by hand would.
    for _ in 0..3 {
        let mut modem = open_with(&sim, options()).await;
        assert!(matches!(
            modem.init(Some("0000")).await,
            Err(ModemError::WrongPin { .. })
        ));
        modem.close().await;
    }
    assert!(sim.puk_locked());
    let mut modem = open_with(&sim, options()).await;
    assert_eq!(modem.init(Some("1234")).await, Err(ModemError::PukRequired));
    assert_eq!(sim.pin_attempts(), 3);
}

#[tokio::test]
async fn a_short_text_goes_out_as_one_pdu_with_a_status_report_request() {
    let sim = SimModem::start(SimOptions {
        first_mr: 41,
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = ready(&sim).await;
    let refs = modem.send("+15551234567", "Hello from Ender").await.unwrap();
    assert_eq!(refs, [41]);
    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text().as_deref(), Some("Hello from Ender"));
    assert_eq!(sent[0].submit.destination.value, "+15551234567");
    assert!(sent[0].submit.status_report_requested);
    assert_eq!(sent[0].submit.concat(), None);
}

#[tokio::test]
async fn a_long_text_goes_out_in_parts_each_with_its_reference() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    let refs = modem.send("+15551234567", LONG_TEXT).await.unwrap();
    let sent = sim.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(refs, sent.iter().map(|s| s.mr).collect::<Vec<_>>());
    assert_eq!(refs, [1, 2, 3]);
    let concat: Vec<_> = sent.iter().map(|s| s.submit.concat().unwrap()).collect();
    assert!(
        concat
            .iter()
            .all(|c| c.total == 3 && c.reference == concat[0].reference)
    );
    assert_eq!(concat.iter().map(|c| c.sequence).collect::<Vec<_>>(), [1, 2, 3]);
    let mut parts = Reassembler::new();
    let now = Instant::now();
    let mut whole = None;
    for s in sent {
        whole = parts.push(s.submit, now).or(whole);
    }
    assert_eq!(whole.unwrap().body, Body::Text(LONG_TEXT.to_owned()));
    // The next message gets another concatenation reference.
    modem.send("+15551234567", LONG_TEXT).await.unwrap();
    assert_ne!(
        sim.sent()[3].submit.concat().unwrap().reference,
        concat[0].reference
    );
}

#[tokio::test]
async fn refusals_are_reported_with_the_modems_reason() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;

    sim.fail_next("AT+CMGS", "+CMS ERROR: 500");
    let error = modem.send("+15551234567", "hi").await.unwrap_err();
    assert!(matches!(error.failure, SendFailure::Rejected(_)));
    assert!(!error.is_permanent());
    assert!(error.nothing_sent());
    assert_eq!(
        error.to_string(),
        "the modem or the network refused it: +CMS ERROR 500 (unknown error)"
    );

    sim.fail_next("AT+CMGS", "+CMS ERROR: 1");
    let error = modem.send("+15551234567", "hi").await.unwrap_err();
    assert!(error.is_permanent(), "{error}");

    sim.fail_next("AT+CMGS", "+CMS ERROR: 777");
    let error = modem.send("+15551234567", "hi").await.unwrap_err();
    assert!(error.to_string().contains("unknown error code 777"), "{error}");
    assert!(!error.is_permanent());

    let error = modem.send("not a number", "hi").await.unwrap_err();
    assert!(matches!(error.failure, SendFailure::Invalid(_)));
    assert!(error.is_permanent());

    // A refusal of the last part keeps the references of those that went out.
    let lengths: Vec<usize> = encode_submit("+15551234567", LONG_TEXT, 0, true)
        .unwrap()
        .iter()
        .map(|p| p.tpdu_len)
        .collect();
    assert_ne!(lengths[0], lengths[2]);
    sim.fail_next(&format!("AT+CMGS={}", lengths[2]), "+CMS ERROR: 38");
    let error = modem.send("+15551234567", LONG_TEXT).await.unwrap_err();
    assert_eq!((error.part, error.total), (3, 3), "{error}");
    assert_eq!(error.sent, [1, 2]);
    assert!(!error.nothing_sent());
    assert_eq!(
        error.to_string(),
        "part 3 of 3: the modem or the network refused it: +CMS ERROR 38 (network out of order)"
    );
    assert!(modem.send("+15551234567", "still works").await.is_ok());
}

#[tokio::test]
async fn an_indicated_sms_is_read_and_deleted_only_on_acknowledgement() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    let indices = sim.inject_sms("+15550001111", "Hi there, Ender").unwrap();
    assert_eq!(indices, [1]);
    let sms = incoming(next_event(&mut modem).await);
    assert_eq!(sms.from, "+15550001111");
    assert_eq!(sms.text(), "Hi there, Ender");
    assert_eq!(sms.note, None);
    assert_eq!(
        sms.timestamp_rfc3339().as_deref(),
        Some("2025-06-01T12:00:00+02:00")
    );
    assert_eq!(
        sms.slots,
        [Slot {
            storage: "SM".to_owned(),
            index: 1
        }]
    );
    assert_eq!(sim.stored().len(), 1, "not deleted before the acknowledgement");
    // A sweep does not pass it on a second time while it is on its way.
    assert!(modem.sweep().await.unwrap().is_empty());
    modem.acknowledge(&sms.slots).await.unwrap();
    assert!(sim.stored().is_empty());
}

#[tokio::test]
async fn parts_arriving_out_of_order_make_one_message() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    let pdus = deliver_pdus("+15550002222", LONG_TEXT, 77).unwrap();
    assert_eq!(pdus.len(), 3);
    for i in [2, 0, 1] {
        sim.inject_pdu(&pdus[i].hex).unwrap();
    }
    let sms = incoming(next_event(&mut modem).await);
    assert_eq!(sms.text(), LONG_TEXT);
    assert_eq!(sms.slots.len(), 3);
    assert_eq!(modem.inbox().pending(), 0);
    modem.acknowledge(&sms.slots).await.unwrap();
    assert!(sim.stored().is_empty());
}

#[tokio::test]
async fn a_part_that_never_comes_is_given_up_on_after_the_timeout() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = open_with(
        &sim,
        ModemOptions {
            reassembly_timeout: Duration::from_millis(200),
            ..options()
        },
    )
    .await;
    modem.init(None).await.unwrap();
    let pdus = deliver_pdus("+15550002222", LONG_TEXT, 78).unwrap();
    sim.inject_pdu(&pdus[0].hex).unwrap();
    sim.inject_pdu(&pdus[2].hex).unwrap();
    for _ in 0..2 {
        let events = within(Duration::from_secs(5), modem.next_events()).await.unwrap();
        assert!(events.is_empty(), "{events:?}");
    }
    assert_eq!(modem.inbox().pending(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let events = modem.sweep().await.unwrap();
    assert_eq!(events.len(), 1);
    let sms = incoming(events.into_iter().next().unwrap());
    assert_eq!(
        sms.note.as_deref(),
        Some("incomplete message: part 2 of 3 never arrived")
    );
    assert!(sms.text().starts_with(&LONG_TEXT[..100]));
    assert_eq!(sms.slots.len(), 2);
}

#[tokio::test]
async fn the_sweep_finds_what_came_before_the_agent_and_again_after_a_release() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    // No indications yet (the modem is not initialised): the SMS only sits on the SIM.
    sim.inject_sms("+15550003333", "while you were away").unwrap();
    sim.inject_sms("Bank", "alphanumeric sender").unwrap();
    let mut modem = ready(&sim).await;
    let events = modem.sweep().await.unwrap();
    assert_eq!(events.len(), 2);
    let first = incoming(events[0].clone());
    assert_eq!(first.text(), "while you were away");
    assert_eq!(incoming(events[1].clone()).from, "Bank");
    assert!(modem.sweep().await.unwrap().is_empty());
    // The server could not take it: released, it comes again.
    modem.release(&first.slots);
    let again = modem.sweep().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(incoming(again[0].clone()).text(), "while you were away");
    assert_eq!(sim.stored().len(), 2);
}

#[tokio::test]
async fn an_undecodable_pdu_is_passed_on_with_a_note_not_lost() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    let good = &deliver_pdus("+15550004444", "hello", 1).unwrap()[0].hex;
    let truncated = &good[..good.len() - 6];
    sim.inject_pdu(truncated).unwrap();
    let sms = incoming(next_event(&mut modem).await);
    let note = sms.note.unwrap();
    assert!(note.starts_with("undecodable PDU"), "{note}");
    assert!(note.contains(truncated), "{note}");
    assert_eq!(sms.slots.len(), 1);
    assert_eq!(sim.stored().len(), 1);
}

#[tokio::test]
async fn a_status_report_names_the_reference_it_is_for() {
    let sim = SimModem::start(SimOptions {
        first_mr: 200,
        ..SimOptions::default()
    })
    .unwrap();
    let mut modem = ready(&sim).await;
    let refs = modem.send("+15551234567", LONG_TEXT).await.unwrap();
    assert_eq!(refs, [200, 201, 202]);
    sim.emit_status_report(201, 0x00).unwrap();
    sim.emit_status_report(202, 0x41).unwrap();
    assert_eq!(
        next_event(&mut modem).await,
        ModemEvent::StatusReport {
            mr: 201,
            status: DeliveryStatus::Delivered(0),
            slot: None
        }
    );
    assert_eq!(
        next_event(&mut modem).await,
        ModemEvent::StatusReport {
            mr: 202,
            status: DeliveryStatus::PermanentFailure(0x41),
            slot: None
        }
    );
}

#[tokio::test]
async fn a_stored_status_report_is_read_and_then_deleted() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = open_with(
        &sim,
        ModemOptions {
            profile: Profile::Huawei,
            ..options()
        },
    )
    .await;
    modem.init(None).await.unwrap();
    assert_eq!(sim.cnmi(), [2, 1, 0, 2, 0]);
    let refs = modem.send("+15551234567", "hi").await.unwrap();
    let index = sim.emit_status_report(refs[0], 0x00).unwrap().unwrap();
    assert_eq!(sim.stored().len(), 1);
    let event = next_event(&mut modem).await;
    assert!(
        matches!(event, ModemEvent::StatusReport { mr, status: DeliveryStatus::Delivered(0), slot: Some(Slot { index: i, .. }) } if mr == refs[0] && i == index),
        "{event:?}"
    );
    assert!(sim.stored().is_empty());
}

#[tokio::test]
async fn malformed_indications_are_survived() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    sim.emit_raw(
        "\r\n+CDS: 25\r\nOK\r\n+CDS: 3\r\n00FF\r\n+CMTI: \"SM\"\r\n\x00\x7f~~\r\n+CMTI: \"SM\",29\r\n",
    );
    for _ in 0..4 {
        let events = within(Duration::from_secs(5), modem.next_events()).await.unwrap();
        assert!(events.is_empty(), "{events:?}");
    }
    assert_eq!(modem.signal().await.unwrap().rssi, Some(20));
}

#[tokio::test]
async fn a_modem_that_dies_mid_send_times_out_and_comes_back_after_a_reset() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    sim.fault_next("AT+CMGS", Fault::Hang);
    let error = within(Duration::from_secs(5), modem.send("+15551234567", "hello"))
        .await
        .unwrap_err();
    assert_eq!(error.failure, SendFailure::NoAnswerAfterPdu);
    assert!(error.needs_reset());
    assert!(!error.nothing_sent());
    assert_eq!(sim.sent().len(), 1, "the PDU reached the modem");
    // Still dead: the reset gives up in bounded time.
    let started = Instant::now();
    let reset = within(Duration::from_secs(5), modem.reset()).await.unwrap_err();
    assert!(reset.needs_reset(), "{reset}");
    assert!(started.elapsed() < T * 5);
    sim.resume();
    within(Duration::from_secs(5), modem.reset()).await.unwrap();
    assert!(sim.commands().iter().any(|c| c == "ATZ"));
    assert!(sim.pdu_mode(), "re-initialised after ATZ");
    assert_eq!(modem.send("+15551234567", "again").await.unwrap(), [2]);
}

#[tokio::test]
async fn a_modem_that_stops_before_the_prompt_times_out_with_nothing_sent() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let mut modem = ready(&sim).await;
    sim.hang();
    let error = within(Duration::from_secs(5), modem.send("+15551234567", "hello"))
        .await
        .unwrap_err();
    assert_eq!(error.failure, SendFailure::NoAnswer);
    assert!(error.nothing_sent());
    assert!(sim.sent().is_empty());
    let error = within(Duration::from_secs(5), modem.signal()).await.unwrap_err();
    assert!(error.needs_reset(), "{error}");
}

#[tokio::test]
async fn an_unplugged_modem_is_a_disconnection_not_a_hang() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let port = sim.port();
    let mut modem = ready(&sim).await;
    sim.unplug();
    let error = within(Duration::from_secs(5), modem.next_events())
        .await
        .unwrap_err();
    assert!(error.is_disconnected(), "{error}");
    let error = within(Duration::from_secs(5), modem.send("+15551234567", "hello"))
        .await
        .unwrap_err();
    assert!(error.is_disconnected() || error.needs_reset(), "{error}");
    modem.close().await;
    let Err(error) = Modem::open(&port, 115_200, None, options()).await else {
        panic!("the port should be gone");
    };
    assert!(error.is_disconnected());
    assert!(error.to_string().contains("no such device"), "{error}");
}

#[tokio::test]
async fn a_modem_unplugged_after_taking_the_pdu_may_have_sent_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (agent, mut port) = tokio::io::duplex(4096);
    let mut modem = Modem::from_stream(agent, options());
    let script = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        // The command, then the prompt, then the PDU up to Ctrl-Z; then the port is gone.
        while !seen.ends_with(b"\r") {
            let n = port.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        port.write_all(b"\r\n> ").await.unwrap();
        while !seen.ends_with(&[0x1a]) {
            let n = port.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        drop(port);
    };
    let (_, result) = within(Duration::from_secs(5), async {
        tokio::join!(script, modem.send("+15551234567", "hello"))
    })
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error.failure, SendFailure::DisconnectedAfterPdu(_)),
        "{error}"
    );
    assert!(error.is_disconnected());
    assert!(error.uncertain(), "the recipient may have it");
    assert!(!error.nothing_sent(), "so it must not be sent again");
}

#[tokio::test]
async fn indications_on_a_separate_notification_port_are_heard() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let notify = SimModem::start(SimOptions::default()).unwrap();
    sim.inject_sms("+15550005555", "announced elsewhere").unwrap();
    let mut modem = Modem::open(&sim.port(), 115_200, Some(&notify.port()), options())
        .await
        .unwrap();
    modem.init(None).await.unwrap();
    notify.emit_raw("\r\n+CMTI: \"SM\",1\r\n");
    let sms = incoming(next_event(&mut modem).await);
    assert_eq!(sms.text(), "announced elsewhere");
    assert!(
        notify.commands().is_empty(),
        "nothing is written to the notification port"
    );
}
