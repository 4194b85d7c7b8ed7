//! A Server-Sent Events parser (the WHATWG event-stream format), fed with chunks as they
//! arrive: lines may be split anywhere, even inside a UTF-8 sequence, and may end in LF,
//! CRLF or CR.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` unless the stream named it.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream, if any.
    pub id: Option<String>,
}

/// A line longer than any event Ender sends: the stream is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream line is longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

/// Longest line accepted (a message body is at most a few KiB of JSON).
pub const MAX_LINE: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last line ended in CR: an LF starting the next chunk belongs to it.
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.process(&line, &mut out);
                }
                _ if self.line.len() >= MAX_LINE => return Err(LineTooLong),
                _ => self.line.push(b),
            }
        }
        Ok(out)
    }

    fn process(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) {
        let decoded = String::from_utf8_lossy(raw);
        let mut line: &str = &decoded;
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // a comment, e.g. the server's keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields: nothing to do
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        data.pop(); // the newline after the last data line
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(input: &[u8], size: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        input.chunks(size).flat_map(|c| p.feed(c).unwrap()).collect()
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn server_sse_parses_events_comments_and_keep_alives_at_any_split() {
        let stream = "\u{feff}event: hello\ndata: {\"device_id\":\"d\"}\n\n\
                      :keep-alive\n\n\
                      : another comment\n\
                      event: message\nid: m1\ndata: {\"message_id\":\"m1\",\n\
                      data: \"body\":\"h\u{e9}llo \u{1f600}\"}\n\n\
                      :keep-alive\n\n";
        let expected = vec![
            ev("hello", "{\"device_id\":\"d\"}", None),
            ev(
                "message",
                "{\"message_id\":\"m1\",\n\"body\":\"h\u{e9}llo \u{1f600}\"}",
                Some("m1"),
            ),
        ];
        // Every chunk size, including one byte at a time (splitting UTF-8 sequences).
        for size in 1..=stream.len() {
            assert_eq!(
                parse_in_chunks(stream.as_bytes(), size),
                expected,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn server_sse_accepts_crlf_and_cr_line_ends() {
        for stream in [
            "data: a\r\ndata: b\r\n\r\ndata:c\r\rdata\r\r",
            "data: a\rdata: b\r\rdata:c\n\ndata\n\n",
        ] {
            for size in 1..=stream.len() {
                assert_eq!(
                    parse_in_chunks(stream.as_bytes(), size),
                    vec![
                        ev("message", "a\nb", None),
                        ev("message", "c", None),
                        ev("message", "", None)
                    ],
                    "{stream:?} in chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn server_sse_ignores_events_without_data_and_unfinished_events() {
        let mut p = SseParser::new();
        let out = p.feed(b"event: message\nid: 7\n\nretry: 10\n\ndata: x").unwrap();
        assert!(out.is_empty());
        // The event type does not leak into the next event; the id does (per the spec).
        assert_eq!(p.feed(b"\n\n").unwrap(), vec![ev("message", "x", Some("7"))]);
    }

    #[test]
    fn server_sse_refuses_endless_lines() {
        let mut p = SseParser::new();
        assert_eq!(p.feed(&vec![b'a'; MAX_LINE + 1]), Err(LineTooLong));
    }
}
