//! The supervised modem task against the simulated modem: what the server connection
//! will see.

use std::time::Duration;

use ender_modem_agent::config::{Config, ModemConfig};
use ender_modem_agent::modem::Timeouts;
use ender_modem_agent::sim::{Fault, SimModem, SimOptions};
use ender_modem_agent::task::{
    AckError, Event, Incoming, ModemHandle, ModemState, ModemTask, SendOutcome, TaskOptions,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{LONG_TEXT, within};

const WAIT: Duration = Duration::from_secs(10);

fn modem_config(port: &str, pin: Option<&str>) -> ModemConfig {
    let pin = pin.map(|p| format!("pin = \"{p}\"\n")).unwrap_or_default();
    let text = format!(
        "server = \"http://127.0.0.1:9\"\n[[modem]]\nname = \"sim\"\nkey = \"dk_test\"\nport = \"{port}\"\n{pin}"
    );
    let config = Config::parse("test.toml".as_ref(), &text, Vec::new()).unwrap();
    config.modems.into_iter().next().unwrap()
}

fn options() -> TaskOptions {
    TaskOptions {
        timeouts: Timeouts::all(Duration::from_millis(300)),
        sweep_every: Duration::from_millis(400),
        status_every: Duration::from_secs(3600),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..TaskOptions::default()
    }
}

fn spawn(sim: &SimModem, pin: Option<&str>) -> (ModemHandle, UnboundedReceiver<Event>) {
    ModemTask::spawn(modem_config(&sim.port(), pin), options())
}

async fn ready(handle: &ModemHandle) {
    within(WAIT, handle.wait_for(|s| *s == ModemState::Ready))
        .await
        .unwrap();
}

/// The next event that is not a status poll.
async fn next(events: &mut UnboundedReceiver<Event>) -> Event {
    within(WAIT, async {
        loop {
            match events.recv().await.unwrap() {
                Event::Status(_) => continue,
                event => return event,
            }
        }
    })
    .await
}

async fn next_incoming(events: &mut UnboundedReceiver<Event>) -> Incoming {
    match next(events).await {
        Event::Incoming(incoming) => incoming,
        other => panic!("expected an incoming SMS, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_receives_and_reports_through_the_task() {
    let sim = SimModem::start(SimOptions {
        first_mr: 10,
        ..SimOptions::default()
    })
    .unwrap();
    let (handle, mut events) = spawn(&sim, None);
    ready(&handle).await;
    let Event::Status(status) = within(WAIT, events.recv()).await.unwrap() else {
        panic!("the first event is the status after init");
    };
    assert_eq!(status.signal.dbm, Some(-73));
    assert_eq!(status.operator.as_deref(), Some("Ender Mobile"));

    let outcome = handle.send("msg-1", "+15551234567", LONG_TEXT).await;
    assert_eq!(
        outcome,
        SendOutcome::Sent {
            refs: vec![10, 11, 12]
        }
    );
    sim.emit_status_report(11, 0x00).unwrap();
    sim.emit_status_report(12, 0x46).unwrap();
    sim.emit_status_report(10, 0x30).unwrap(); // still trying: not final, no event
    sim.emit_status_report(99, 0x00).unwrap(); // not ours (or from before a restart)
    match next(&mut events).await {
        Event::Delivered { mr, message_id } => {
            assert_eq!((mr, message_id.as_deref()), (11, Some("msg-1")));
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
    match next(&mut events).await {
        Event::Failed {
            mr,
            message_id,
            reason,
        } => {
            assert_eq!((mr, message_id.as_deref()), (12, Some("msg-1")));
            assert_eq!(reason, "validity period expired (status 0x46)");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    match next(&mut events).await {
        Event::Delivered { mr, message_id } => assert_eq!((mr, message_id), (99, None)),
        other => panic!("expected a delivery, got {other:?}"),
    }

    sim.inject_sms("+15550001111", "a reply").unwrap();
    let sms = next_incoming(&mut events).await;
    assert_eq!(
        (sms.from.as_str(), sms.text.as_str()),
        ("+15550001111", "a reply")
    );
    assert_eq!(sim.stored().len(), 1);
    sms.ack.confirm().await.unwrap();
    assert!(sim.stored().is_empty());
    handle.shutdown();
}

#[tokio::test]
async fn an_sms_whose_ack_is_dropped_comes_again_and_is_kept_until_confirmed() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    sim.inject_sms("+15550001111", "do not lose me").unwrap();
    let (handle, mut events) = spawn(&sim, None);
    let first = next_incoming(&mut events).await;
    assert_eq!(first.text, "do not lose me");
    drop(first); // the server did not take it
    let again = next_incoming(&mut events).await;
    assert_eq!(again.text, "do not lose me");
    assert_eq!(sim.stored().len(), 1);
    again.ack.confirm().await.unwrap();
    assert!(sim.stored().is_empty());
    handle.shutdown();
}

#[tokio::test]
async fn a_wrong_pin_stops_the_modem_after_one_try() {
    let sim = SimModem::start(SimOptions {
        pin: Some("1234".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let (handle, _events) = spawn(&sim, Some("9999"));
    let state = within(WAIT, handle.wait_for(|s| matches!(s, ModemState::Stopped { .. })))
        .await
        .unwrap();
    let ModemState::Stopped { reason } = state else {
        unreachable!()
    };
    assert!(reason.contains("rejected the PIN"), "{reason}");
    // Well past several backoffs: still one try.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sim.pin_attempts(), 1);
    let SendOutcome::Failed {
        reason, permanent, ..
    } = handle.send("msg-1", "+15551234567", "hi").await
    else {
        panic!("a stopped modem cannot send");
    };
    assert!(!permanent);
    assert!(reason.contains("rejected the PIN"), "{reason}");
}

#[tokio::test]
async fn a_modem_that_hangs_mid_send_is_reset_and_recovers() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let (handle, _events) = spawn(&sim, None);
    ready(&handle).await;
    sim.fault_next("AT+CMGS", Fault::Hang);
    let outcome = within(WAIT, handle.send("msg-1", "+15551234567", "hello")).await;
    let SendOutcome::Failed {
        reason, permanent, ..
    } = outcome
    else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(!permanent);
    assert!(reason.contains("may have been sent"), "{reason}");
    let state = within(
        WAIT,
        handle.wait_for(|s| matches!(s, ModemState::Unavailable { .. })),
    )
    .await
    .unwrap();
    assert!(matches!(state, ModemState::Unavailable { .. }));
    // While it is away, sends fail fast instead of waiting.
    let outcome = within(Duration::from_secs(3), handle.send("msg-2", "+15551234567", "x")).await;
    assert!(
        matches!(outcome, SendOutcome::Failed { permanent: false, .. }),
        "{outcome:?}"
    );
    sim.resume();
    ready(&handle).await;
    let outcome = handle.send("msg-3", "+15551234567", "after the reset").await;
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    assert!(sim.pdu_mode());
    handle.shutdown();
}

#[tokio::test]
async fn a_send_that_never_reached_the_modem_is_tried_again_after_the_reset() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let (handle, _events) = ModemTask::spawn(
        modem_config(&sim.port(), None),
        TaskOptions {
            sweep_every: Duration::from_secs(3600),
            ..options()
        },
    );
    ready(&handle).await;
    // Silent for a moment, so that the prompt never comes, then back.
    sim.hang();
    let send = handle.send("msg-1", "+15551234567", "hello");
    let revive = async {
        tokio::time::sleep(Duration::from_millis(450)).await;
        sim.resume();
    };
    let (outcome, ()) = within(WAIT, async { tokio::join!(send, revive) }).await;
    assert_eq!(outcome, SendOutcome::Sent { refs: vec![1] });
    assert_eq!(sim.sent().len(), 1);
    assert!(
        sim.commands().iter().any(|c| c == "ATZ"),
        "sent again after a reset"
    );
    handle.shutdown();
}

#[tokio::test]
async fn an_unplugged_modem_is_retried_and_acks_wait_for_it() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let (handle, mut events) = spawn(&sim, None);
    ready(&handle).await;
    sim.inject_sms("+15550001111", "just before").unwrap();
    let sms = next_incoming(&mut events).await;
    sim.unplug();
    let state = within(
        WAIT,
        handle.wait_for(
            |s| matches!(s, ModemState::Unavailable { reason } if reason.contains("no such device")),
        ),
    )
    .await
    .unwrap();
    assert!(matches!(state, ModemState::Unavailable { .. }));
    assert!(matches!(sms.ack.confirm().await, Err(AckError::Deferred(_))));
    let outcome = handle.send("msg-1", "+15551234567", "hi").await;
    let SendOutcome::Failed { reason, .. } = outcome else {
        panic!("an unplugged modem cannot send");
    };
    assert!(reason.contains("unavailable"), "{reason}");
    handle.shutdown();
}

#[tokio::test]
async fn a_refused_command_does_not_take_the_modem_down() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    let (handle, mut events) = spawn(&sim, None);
    ready(&handle).await;
    sim.fail_next("AT+CMGL", "+CMS ERROR: 314");
    sim.emit_raw("\r\n+CDS: 25\r\nZZ\r\n\x00\x01garbage\r\n");
    // Past the failing sweep (every 400 ms here).
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(handle.state(), ModemState::Ready);
    assert!(!sim.commands().iter().any(|c| c == "ATZ"), "not reset");
    sim.inject_sms("+15550001111", "still listening").unwrap();
    assert_eq!(next_incoming(&mut events).await.text, "still listening");
    handle.shutdown();
}
