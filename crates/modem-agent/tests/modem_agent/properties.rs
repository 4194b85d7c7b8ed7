//! Property tests: any text survives encode → decode → reassembly in any order, parts
//! respect the size limits and never cut an escape or a surrogate pair, and no input,
//! however broken, makes the decoder panic.

use std::time::Instant;

use ender_modem_agent::pdu::{
    Address, Body, EncodedPdu, Pdu, Reassembler, Timestamp, UserData, decode, decode_tpdu, encode_deliver,
    encode_submit, gsm7_encodable, septet_len,
};
use proptest::prelude::*;

/// Every character GSM-7 can carry, the extension table included.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\u{0C}";

fn gsm7_text() -> impl Strategy<Value = String> {
    let chars: Vec<char> = GSM7.chars().collect();
    prop::collection::vec(prop::sample::select(chars), 0..2000).prop_map(|c| c.into_iter().collect())
}

/// Any Unicode, weighted towards emoji and other non-BMP characters and towards text that
/// is mostly GSM-7 with a stray character forcing UCS-2.
fn unicode_text() -> impl Strategy<Value = String> {
    let emoji = prop::sample::select(vec!['😀', '👍', '🇩', '🇪', '𝄞', '🤷', '\u{200D}', '\u{FE0F}']);
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => emoji,
        3 => prop::char::range('a', 'z'),
        1 => prop::char::range('\u{400}', '\u{4FF}'),
    ];
    prop::collection::vec(ch, 0..2000).prop_map(|c| c.into_iter().collect())
}

/// A deterministic shuffle, so a failing case replays.
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap();
        items.swap(i, j);
    }
    items
}

/// Checks each PDU's framing and that no part ends in a dangling escape or high surrogate.
fn check_parts(pdus: &[EncodedPdu]) -> Result<Vec<Pdu>, TestCaseError> {
    let mut decoded = Vec::new();
    for pdu in pdus {
        prop_assert_eq!(pdu.hex.len(), 2 + 2 * pdu.tpdu_len);
        prop_assert!(
            pdu.tpdu_len <= 176,
            "a TPDU is at most 176 octets, got {}",
            pdu.tpdu_len
        );
        let p = decode(&pdu.hex).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let data = match &p {
            Pdu::Submit(s) => &s.user_data,
            Pdu::Deliver(d) => &d.user_data,
            Pdu::StatusReport(_) => return Err(TestCaseError::fail("unexpected status report")),
        };
        match data {
            UserData::Gsm7(septets) => {
                prop_assert!(septets.len() <= 160);
                // An escape at the end of a part would belong with the next part's septet.
                let trailing_escapes = septets.iter().rev().take_while(|&&s| s == 0x1B).count();
                prop_assert!(
                    trailing_escapes % 2 == 0,
                    "a part ends in the middle of an escape"
                );
            }
            UserData::Ucs2(units) => {
                prop_assert!(units.len() <= 70);
                prop_assert!(
                    !matches!(units.last(), Some(0xD800..=0xDBFF)),
                    "a part ends in a high surrogate"
                );
                prop_assert!(
                    !matches!(units.first(), Some(0xDC00..=0xDFFF)),
                    "a part starts with a low surrogate"
                );
            }
            UserData::Data8(_) => return Err(TestCaseError::fail("text came out as 8-bit data")),
        }
        decoded.push(p);
    }
    Ok(decoded)
}

fn round_trip_submit(text: &str, reference: u8, srr: bool, seed: u64) -> Result<(), TestCaseError> {
    let pdus = encode_submit("+447700900123", text, reference, srr)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let gsm7 = gsm7_encodable(text);
    let expected_parts = match (gsm7, septet_len(text)) {
        (true, Some(n)) if n <= 160 => Some(1),
        (false, _) if text.encode_utf16().count() <= 70 => Some(1),
        _ => None,
    };
    if let Some(n) = expected_parts {
        prop_assert_eq!(pdus.len(), n);
    } else {
        prop_assert!(pdus.len() > 1);
    }
    let decoded = check_parts(&pdus)?;
    let now = Instant::now();
    let mut r = Reassembler::new();
    let mut messages = Vec::new();
    for p in shuffled(decoded, seed) {
        let Pdu::Submit(s) = p else {
            return Err(TestCaseError::fail("expected SMS-SUBMIT"));
        };
        prop_assert_eq!(s.status_report_requested, srr);
        prop_assert_eq!(
            s.concat().map(|c| c.reference),
            (pdus.len() > 1).then_some(u16::from(reference))
        );
        messages.extend(r.push(s, now));
    }
    prop_assert_eq!(messages.len(), 1);
    prop_assert_eq!(r.pending(), 0);
    prop_assert_eq!(&messages[0].body, &Body::Text(text.to_owned()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn gsm7_text_round_trips_through_parts_in_any_order(
        text in gsm7_text(),
        reference in any::<u8>(),
        srr in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assert!(gsm7_encodable(&text));
        round_trip_submit(&text, reference, srr, seed)?;
    }

    #[test]
    fn unicode_text_round_trips_through_parts_in_any_order(
        text in unicode_text(),
        reference in any::<u8>(),
        srr in any::<bool>(),
        seed in any::<u64>(),
    ) {
        round_trip_submit(&text, reference, srr, seed)?;
    }

    #[test]
    fn delivers_round_trip_too(
        text in prop_oneof![gsm7_text(), unicode_text()],
        alphanumeric in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let from = if alphanumeric {
            Address::alphanumeric("Ender{1}").unwrap()
        } else {
            Address::parse("+4915112345678").unwrap()
        };
        let ts = Timestamp { year: 2030, month: 12, day: 31, hour: 23, minute: 59, second: 58, offset_quarters: -14 };
        let pdus = encode_deliver(&from, &text, &ts, 42).unwrap();
        let decoded = check_parts(&pdus)?;
        let mut r = Reassembler::new();
        let mut messages = Vec::new();
        for p in shuffled(decoded, seed) {
            let Pdu::Deliver(d) = p else { return Err(TestCaseError::fail("expected SMS-DELIVER")) };
            prop_assert_eq!(&d.originator, &from);
            prop_assert_eq!(d.timestamp, ts);
            messages.extend(r.push(d, Instant::now()));
        }
        prop_assert_eq!(messages.len(), 1);
        prop_assert_eq!(&messages[0].body, &Body::Text(text));
        prop_assert_eq!(messages[0].timestamp, Some(ts));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The fuzz target: arbitrary octets, with or without an SMSC part, never panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let hex = hex::encode(&bytes);
        let _ = decode(&hex);
        let _ = decode_tpdu(&hex);
    }

    #[test]
    fn decoding_arbitrary_strings_never_panics(s in ".{0,300}") {
        let _ = decode(&s);
        let _ = decode_tpdu(&s);
    }

    /// Random bytes rarely get past the first fields, so also break valid PDUs: flip
    /// octets, cut them short, and see the decoder answer with a value or an error.
    #[test]
    fn decoding_damaged_pdus_never_panics(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let valid = [
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
            "0791021197003899440ED0657A7A1E6687E93408610192016390004205000365030106440642062F002006270633062A064706440643062A0020064306440020062706440648062D062F0627062A0020062706440645062C06270646064A",
            "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB060319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B068BCD5C20",
            "0006D60B911326880736F411101171955140111011719571400007000002E834",
            "0051000C912943524295050004AA0F060804112F01014869206475646521",
            "0019000B917228001011F100003170013193008017D474BB3CA787DB70903DCC4E93D3F43C885E9ED301",
        ];
        let mut bytes = hex::decode(valid[which]).unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = decode(&hex::encode(&bytes));
        let _ = decode_tpdu(&hex::encode(&bytes));
    }
}

#[test]
fn the_longest_ucs2_message_that_fits_splits_into_255_parts() {
    let text = "😀".repeat(33 * 255);
    let pdus = encode_submit("+447700900123", &text, 1, false).unwrap();
    assert_eq!(pdus.len(), 255);
    assert!(encode_submit("+447700900123", &format!("{text}😀"), 1, false).is_err());
}
