//! The AT channel against scripted byte streams: the test plays the modem on the other end
//! of an in-memory duplex, byte for byte.

use std::time::Duration;

use ender_modem_agent::at::{AtChannel, AtError, FinalError, Stage, Urc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const T: Duration = Duration::from_millis(300);
const REPORT: &str = "0006D60B911326880736F4111011719551401110117195714000";

fn channel() -> (AtChannel, tokio::sync::mpsc::UnboundedReceiver<Urc>, DuplexStream) {
    let (agent, modem) = tokio::io::duplex(4096);
    let (at, urcs) = AtChannel::new(agent);
    (at, urcs, modem)
}

/// Reads exactly `expected` from the agent, then answers `reply`.
async fn exchange(modem: &mut DuplexStream, expected: &str, reply: &[u8]) {
    let mut buf = vec![0; expected.len()];
    modem.read_exact(&mut buf).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&buf), expected);
    modem.write_all(reply).await.unwrap();
}

#[tokio::test]
async fn echoed_commands_are_not_taken_for_answers() {
    let (mut at, _urcs, mut modem) = channel();
    let script = async {
        exchange(&mut modem, "AT+CSQ\r", b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n").await;
        exchange(&mut modem, "ATE0\r", b"ATE0\r\r\nOK\r\n").await;
        exchange(&mut modem, "AT+CSQ\r", b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n").await;
    };
    let commands = async {
        let echoed = at.command("AT+CSQ", T).await.unwrap();
        assert_eq!(echoed.lines, ["+CSQ: 20,99"]);
        assert!(at.command("ATE0", T).await.unwrap().lines.is_empty());
        let plain = at.command("AT+CSQ", T).await.unwrap();
        assert_eq!(plain.value("+CSQ:"), Some("21,99"));
    };
    tokio::join!(script, commands);
}

#[tokio::test]
async fn unsolicited_codes_in_the_middle_of_an_answer_go_to_the_listener() {
    let (mut at, mut urcs, mut modem) = channel();
    let reply =
        format!("\r\n+CMTI: \"SM\",3\r\n\r\n+CSQ: 20,99\r\n\r\n+CDS: 25\r\n{REPORT}\r\nRING\r\n\r\nOK\r\n");
    let script = exchange(&mut modem, "AT+CSQ\r", reply.as_bytes());
    let (_, response) = tokio::join!(script, at.command("AT+CSQ", T));
    assert_eq!(response.unwrap().lines, ["+CSQ: 20,99"]);
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::NewMessage {
            storage: "SM".to_owned(),
            index: 3
        }
    );
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::StatusReport {
            pdu: REPORT.to_owned()
        }
    );
    assert_eq!(urcs.recv().await.unwrap(), Urc::Ring);
}

#[tokio::test]
async fn lines_while_idle_are_unsolicited_or_dropped() {
    let (mut at, mut urcs, mut modem) = channel();
    modem
        .write_all(b"\r\nRDY\r\n+CPIN: READY\r\n\xff\xfe junk \r\nSMS Ready\r\n")
        .await
        .unwrap();
    for line in ["RDY", "+CPIN: READY", "SMS Ready"] {
        assert_eq!(urcs.recv().await.unwrap(), Urc::Other(line.to_owned()));
    }
    // The junk is dropped; none of it reaches the next command.
    let script = exchange(&mut modem, "AT\r", b"\r\nOK\r\n");
    let (_, response) = tokio::join!(script, at.command("AT", T));
    assert!(response.unwrap().lines.is_empty());
}

#[tokio::test]
async fn garbage_inside_an_answer_is_kept_as_a_line_and_skipped_by_readers() {
    let (mut at, _urcs, mut modem) = channel();
    let script = exchange(
        &mut modem,
        "AT+CSQ\r",
        b"\r\n\x00\xff~~garbage~~\r\n+CSQ: 20,99\r\nOK\r\n",
    );
    let (_, response) = tokio::join!(script, at.command("AT+CSQ", T));
    let response = response.unwrap();
    assert_eq!(response.lines.len(), 2);
    assert_eq!(response.value("+CSQ:"), Some("20,99"));
}

#[tokio::test]
async fn error_results_carry_their_code_and_meaning() {
    let (mut at, _urcs, mut modem) = channel();
    let script = async {
        exchange(&mut modem, "AT+CMGD=1\r", b"\r\n+CMS ERROR: 500\r\n").await;
        exchange(&mut modem, "AT+CMGD=2\r", b"\r\n+CMS ERROR: 777\r\n").await;
        exchange(&mut modem, "AT+CPIN?\r", b"\r\n+CME ERROR: SIM not inserted\r\n").await;
        exchange(&mut modem, "AT+FOO\r", b"\r\nERROR\r\n").await;
    };
    let commands = async {
        let known = at.command("AT+CMGD=1", T).await.unwrap_err();
        assert_eq!(known.to_string(), "AT+CMGD=1: +CMS ERROR 500 (unknown error)");
        let AtError::Failed { error: unknown, .. } = at.command("AT+CMGD=2", T).await.unwrap_err() else {
            panic!("expected a failure");
        };
        assert_eq!(unknown.cms_code(), Some(777));
        assert!(
            unknown.to_string().contains("unknown error code 777"),
            "{unknown}"
        );
        let AtError::Failed { error: sim, .. } = at.command("AT+CPIN?", T).await.unwrap_err() else {
            panic!("expected a failure");
        };
        assert!(sim.is_sim_missing());
        assert!(matches!(
            at.command("AT+FOO", T).await,
            Err(AtError::Failed {
                error: FinalError::Error,
                ..
            })
        ));
    };
    tokio::join!(script, commands);
}

#[tokio::test]
async fn a_silent_modem_times_out_and_its_late_answer_is_not_taken_for_the_next() {
    let (mut at, _urcs, mut modem) = channel();
    let started = tokio::time::Instant::now();
    let error = at.command("AT+COPS?", T).await.unwrap_err();
    assert!(matches!(
        error,
        AtError::Timeout {
            stage: Stage::Command,
            ..
        }
    ));
    assert!(started.elapsed() < T * 3);
    let mut buf = [0; 9];
    modem.read_exact(&mut buf).await.unwrap();
    modem.write_all(b"\r\n+COPS: 0\r\n\r\nOK\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let script = exchange(&mut modem, "AT+CSQ\r", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    let (_, response) = tokio::join!(script, at.command("AT+CSQ", T));
    assert_eq!(response.unwrap().lines, ["+CSQ: 20,99"]);
}

#[tokio::test]
async fn a_pdu_goes_after_the_prompt_and_ends_with_ctrl_z() {
    let (mut at, _urcs, mut modem) = channel();
    let script = async {
        exchange(&mut modem, "AT+CMGS=5\r", b"\r\n> ").await;
        exchange(&mut modem, "000100AABB\x1a", b"\r\n+CMGS: 7\r\n\r\nOK\r\n").await;
    };
    let (_, response) = tokio::join!(script, at.command_with_pdu("AT+CMGS=5", "000100AABB", T, T));
    assert_eq!(response.unwrap().value("+CMGS:"), Some("7"));
}

#[tokio::test]
async fn no_prompt_means_esc_so_the_modem_stops_waiting_for_a_pdu() {
    let (mut at, _urcs, mut modem) = channel();
    let error = at
        .command_with_pdu("AT+CMGS=5", "000100AABB", T, T)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        AtError::Timeout {
            stage: Stage::Command,
            ..
        }
    ));
    let mut buf = [0; 11];
    modem.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"AT+CMGS=5\r\x1b");
}

#[tokio::test]
async fn silence_after_the_pdu_is_a_timeout_at_the_pdu_stage() {
    let (mut at, _urcs, mut modem) = channel();
    let script = exchange(&mut modem, "AT+CMGS=5\r", b"\r\n> ");
    let (_, result) = tokio::join!(script, at.command_with_pdu("AT+CMGS=5", "000100AABB", T, T));
    assert!(matches!(
        result,
        Err(AtError::Timeout {
            stage: Stage::Pdu,
            ..
        })
    ));
}

#[tokio::test]
async fn a_network_refusal_after_the_pdu_is_a_failure_at_the_pdu_stage() {
    let (mut at, _urcs, mut modem) = channel();
    let script = async {
        exchange(&mut modem, "AT+CMGS=5\r", b"\r\n> ").await;
        exchange(&mut modem, "000100AABB\x1a", b"\r\n+CMS ERROR: 38\r\n").await;
    };
    let (_, result) = tokio::join!(script, at.command_with_pdu("AT+CMGS=5", "000100AABB", T, T));
    let AtError::Failed { error, stage, .. } = result.unwrap_err() else {
        panic!("expected a failure");
    };
    assert_eq!(stage, Stage::Pdu);
    assert_eq!(error.to_string(), "+CMS ERROR 38 (network out of order)");
}

#[tokio::test]
async fn a_closed_port_fails_commands_and_tells_the_listener() {
    let (mut at, mut urcs, modem) = channel();
    drop(modem);
    assert!(matches!(urcs.recv().await.unwrap(), Urc::PortClosed { .. }));
    assert!(matches!(
        at.command("AT", T).await,
        Err(AtError::Closed(_) | AtError::Write(_))
    ));
}

#[tokio::test]
async fn the_pin_never_appears_in_errors() {
    let (mut at, _urcs, mut modem) = channel();
    let script = exchange(&mut modem, "AT+CPIN=\"4321\"\r", b"\r\n+CME ERROR: 16\r\n");
    let (_, result) = tokio::join!(script, at.command("AT+CPIN=\"4321\"", T));
    let message = result.unwrap_err().to_string();
    assert!(!message.contains("4321"), "{message}");
    assert!(message.contains("incorrect password"), "{message}");
}

#[tokio::test]
async fn a_port_lost_after_the_pdu_is_not_taken_for_nothing_sent() {
    let (mut at, _urcs, mut modem) = channel();
    let script = async {
        exchange(&mut modem, "AT+CMGS=5\r", b"\r\n> ").await;
        exchange(&mut modem, "000100AABB\x1a", b"").await;
        // Unplugged before the modem could answer.
        drop(modem);
    };
    let (_, result) = tokio::join!(script, at.command_with_pdu("AT+CMGS=5", "000100AABB", T, T));
    assert!(matches!(result, Err(AtError::LostAfterPdu { .. })), "{result:?}");
}
