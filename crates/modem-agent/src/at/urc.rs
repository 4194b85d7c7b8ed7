//! Splitting the modem's byte stream into lines, the `> ` prompt and unsolicited result
//! codes. Pure code, so that the awkward cases (a two-line `+CDS` cut short, a prompt
//! without a line end, garbage) are tested without a port.

use super::codes::strip_prefix_ignore_case;

/// Longest line kept whole; longer runs of bytes without a line end are cut there (a
/// 160-character SMS is under 400 hex digits, a `+CMGL` line well under this).
const MAX_LINE: usize = 4096;

/// An unsolicited result code: something the modem says on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: an SMS was stored at `index`.
    NewMessage {
        storage: String,
        index: u32,
    },
    /// `+CMT: ,24` and the PDU on the next line: an SMS handed over without storing it.
    Message {
        pdu: String,
    },
    /// `+CDS: 25` and the PDU on the next line: a status report.
    StatusReport {
        pdu: String,
    },
    /// `+CDSI: "SR",1`: a status report was stored at `index`.
    StoredStatusReport {
        storage: String,
        index: u32,
    },
    Ring,
    /// Anything else unsolicited (`+CREG: 1`, `^RSSI: 17`, `SMS Ready`…), kept for the log.
    Other(String),
    /// A result code we know that came out wrong: a `+CDS` without its PDU, a `+CMTI`
    /// without an index.
    Malformed {
        line: String,
        problem: &'static str,
    },
    /// The port closed (end of file or a read error): nothing more will come.
    PortClosed {
        reason: String,
    },
}

/// What a stretch of bytes from the modem holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Line(String),
    /// `> `: the modem waits for a PDU.
    Prompt,
    Urc(Urc),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TwoLine {
    Cmt,
    Cds,
}

/// Incremental splitter: feed it what the port gives, in whatever pieces.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    /// A `+CMT`/`+CDS` header whose PDU line is still to come.
    pending: Option<(TwoLine, String)>,
}

impl Splitter {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                self.finish_line(out);
            } else {
                if self.buf.len() >= MAX_LINE {
                    tracing::warn!(
                        line.len = self.buf.len(),
                        "the modem sent a line longer than {MAX_LINE} bytes; cutting it"
                    );
                    self.finish_line(out);
                }
                self.buf.push(b);
            }
        }
        // The prompt is `> ` with no line end after it.
        if matches!(self.buf.as_slice(), [b'>'] | [b'>', b' ', ..]) {
            self.buf.clear();
            out.push(Item::Prompt);
        }
    }

    fn finish_line(&mut self, out: &mut Vec<Item>) {
        if self.buf.is_empty() {
            return;
        }
        let raw = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\x1a' || c == '\0');
        if line.is_empty() {
            return;
        }
        if let Some((kind, header)) = self.pending.take() {
            if is_hex(line) {
                let pdu = line.to_owned();
                out.push(Item::Urc(match kind {
                    TwoLine::Cmt => Urc::Message { pdu },
                    TwoLine::Cds => Urc::StatusReport { pdu },
                }));
                return;
            }
            out.push(Item::Urc(Urc::Malformed {
                line: header,
                problem: "the PDU line after it is missing",
            }));
        }
        match classify(line) {
            Classified::Urc(urc) => out.push(Item::Urc(urc)),
            Classified::Header(kind) => self.pending = Some((kind, line.to_owned())),
            Classified::Line => out.push(Item::Line(line.to_owned())),
        }
    }
}

enum Classified {
    Urc(Urc),
    Header(TwoLine),
    Line,
}

/// Result codes that are always unsolicited, whatever command is running.
const OTHER_URCS: &[&str] = &[
    "+CRING",
    "+CLIP",
    "+CUSD",
    "+CGEV",
    "+CIEV",
    "+CBM",
    "^RSSI",
    "^HCSQ",
    "^MODE",
    "^BOOT",
    "^SRVST",
    "^SIMST",
    "^DSFLOWRPT",
    "^RSSILVL",
    "+QIND",
    "+CPSI",
];
const OTHER_URC_LINES: &[&str] = &["RDY", "SMS READY", "CALL READY", "PB DONE", "+CPIN: READY"];

fn classify(line: &str) -> Classified {
    if line.eq_ignore_ascii_case("RING") {
        return Classified::Urc(Urc::Ring);
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CMTI:") {
        return Classified::Urc(storage_index(line, rest, |storage, index| Urc::NewMessage {
            storage,
            index,
        }));
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CDSI:") {
        return Classified::Urc(storage_index(line, rest, |storage, index| {
            Urc::StoredStatusReport { storage, index }
        }));
    }
    if strip_prefix_ignore_case(line, "+CMT:").is_some() {
        return Classified::Header(TwoLine::Cmt);
    }
    if strip_prefix_ignore_case(line, "+CDS:").is_some() {
        return Classified::Header(TwoLine::Cds);
    }
    let tag = line.split(':').next().unwrap_or_default();
    if OTHER_URCS.iter().any(|t| tag.eq_ignore_ascii_case(t)) {
        return Classified::Urc(Urc::Other(line.to_owned()));
    }
    // `+CPIN: READY` is also the answer to `AT+CPIN?`: the channel sends lines to a
    // running command first, so this only catches the one a modem prints as it starts.
    Classified::Line
}

/// `OTHER_URC_LINES`: unsolicited only when no command runs (the channel decides).
pub(crate) fn is_idle_urc(line: &str) -> bool {
    OTHER_URC_LINES.iter().any(|l| line.eq_ignore_ascii_case(l))
        || line.starts_with('+')
        || line.starts_with('^')
}

fn storage_index(line: &str, rest: &str, make: impl FnOnce(String, u32) -> Urc) -> Urc {
    let mut fields = rest.split(',');
    let storage = fields.next().unwrap_or_default().trim().trim_matches('"');
    match fields.next().map(|i| i.trim().parse::<u32>()) {
        Some(Ok(index)) if !storage.is_empty() => make(storage.to_owned(), index),
        _ => Urc::Malformed {
            line: line.to_owned(),
            problem: "expected a storage name and an index",
        },
    }
}

pub(crate) fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Item> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            s.push(chunk, &mut out);
        }
        out
    }

    fn line(s: &str) -> Item {
        Item::Line(s.to_owned())
    }

    #[test]
    fn lines_split_on_any_line_end_and_blank_lines_vanish() {
        assert_eq!(
            split(&[b"AT+CSQ\r\r\n+CSQ: 2", b"0,99\r\n\r\nOK\r\n"]),
            [line("AT+CSQ"), line("+CSQ: 20,99"), line("OK")]
        );
    }

    #[test]
    fn the_prompt_needs_no_line_end() {
        assert_eq!(split(&[b"\r\n> "]), [Item::Prompt]);
        assert_eq!(split(&[b"\r\n>", b" "]), [Item::Prompt]);
    }

    #[test]
    fn two_line_urcs_take_the_pdu_from_the_next_line() {
        assert_eq!(
            split(&[
                b"\r\n+CDS: 25\r\n0006D60B91",
                b"1326880736F4111011719551401110117195714000\r\n"
            ]),
            [Item::Urc(Urc::StatusReport {
                pdu: "0006D60B911326880736F4111011719551401110117195714000".to_owned()
            })]
        );
        assert_eq!(
            split(&[b"+CMT: ,24\r\n00AB\r\n"]),
            [Item::Urc(Urc::Message {
                pdu: "00AB".to_owned()
            })]
        );
    }

    #[test]
    fn a_two_line_urc_without_its_pdu_is_malformed_and_the_next_line_survives() {
        assert_eq!(
            split(&[b"+CDS: 25\r\nOK\r\n"]),
            [
                Item::Urc(Urc::Malformed {
                    line: "+CDS: 25".to_owned(),
                    problem: "the PDU line after it is missing"
                }),
                line("OK")
            ]
        );
    }

    #[test]
    fn stored_message_indications_carry_storage_and_index() {
        assert_eq!(
            split(&[b"+CMTI: \"SM\",3\r\n+CDSI: \"SR\",12\r\n+CMTI: \"SM\"\r\nRING\r\n"]),
            [
                Item::Urc(Urc::NewMessage {
                    storage: "SM".to_owned(),
                    index: 3
                }),
                Item::Urc(Urc::StoredStatusReport {
                    storage: "SR".to_owned(),
                    index: 12
                }),
                Item::Urc(Urc::Malformed {
                    line: "+CMTI: \"SM\"".to_owned(),
                    problem: "expected a storage name and an index"
                }),
                Item::Urc(Urc::Ring),
            ]
        );
    }

    #[test]
    fn garbage_is_kept_as_lines_and_overlong_lines_are_cut() {
        let out = split(&[b"\xff\xfe\x00garbage\x1a\r\n"]);
        assert_eq!(out, [line("\u{fffd}\u{fffd}\u{0}garbage")]);
        let long = vec![b'A'; MAX_LINE + 10];
        let out = split(&[&long, b"\r\n"]);
        assert_eq!(out.len(), 2);
    }
}
