//! vCard import (3.0 and 4.0, and the common 2.1 forms): a tolerant parser and the conversion
//! of cards into contact drafts.

use std::ops::ControlFlow;

use super::import_csv::{
    ContactDraft, ImportError, ImportLimits, MAX_NAME_CHARS, MAX_NOTES_CHARS, RowError, normalise_phone,
};

/// One card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcardEntry {
    /// 1-based line of `BEGIN:VCARD`.
    pub line: usize,
    /// FN, else N assembled as "Given Family", else ORG; possibly empty.
    pub name: String,
    pub phones: Vec<VcardPhone>,
    /// NOTE (several are joined by newlines).
    pub notes: String,
    /// CATEGORIES, each once, in card order.
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcardPhone {
    /// Raw, as in the card, with a `tel:` URI scheme (and URI parameters) stripped.
    pub number: String,
    /// "cell", "work", "home"… lower-cased from TYPE (ignoring "voice" and "pref").
    pub kind: Option<String>,
    /// TYPE=pref, bare PREF, or PREF=1.
    pub preferred: bool,
}

#[derive(Default)]
struct CardBuilder {
    line: usize,
    formatted_name: String,
    structured_name: String,
    org: String,
    phones: Vec<VcardPhone>,
    notes: Vec<String>,
    categories: Vec<String>,
}

impl CardBuilder {
    fn finish(self) -> VcardEntry {
        let name = [self.formatted_name, self.structured_name, self.org]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or_default();
        VcardEntry {
            line: self.line,
            name,
            phones: self.phones,
            notes: self.notes.join("\n"),
            categories: self.categories,
        }
    }
}

/// Physical lines with their 1-based numbers; `\r\n`, `\n` and a lone `\r` end a line.
fn physical_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    let mut number = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number += 1;
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..])
            }
            None => (rest, ""),
        };
        rest = next;
        Some((number, line))
    })
}

/// Whether a (so far) logical line is a quoted-printable value ending in a soft line break.
fn qp_soft_break(line: &str) -> bool {
    line.ends_with('=')
        && line
            .split_once(':')
            .is_some_and(|(head, _)| head.to_ascii_uppercase().contains("QUOTED-PRINTABLE"))
}

/// Joins folded lines: a line starting with a space or a tab continues the previous one
/// (the first whitespace character is dropped); a quoted-printable value ending in `=`
/// continues on the next line. One logical line is held at a time.
fn logical_lines(text: &str) -> impl Iterator<Item = (usize, String)> {
    let mut physical = physical_lines(text).peekable();
    std::iter::from_fn(move || {
        let (number, first) = physical.next()?;
        let mut line = first.to_owned();
        while let Some(&(_, next)) = physical.peek() {
            if next.starts_with([' ', '\t']) {
                line.push_str(&next[1..]);
            } else if qp_soft_break(&line) {
                line.pop();
                line.push_str(next);
            } else {
                break;
            }
            physical.next();
        }
        Some((number, line))
    })
}

/// Splits at `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits a value at `sep` not escaped by a backslash; the parts are still escaped.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Resolves `\n` `\N` `\,` `\;` `\\`; other backslashes are kept as they are.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(e @ (',' | ';' | '\\')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Decodes quoted-printable (`=XX`) into bytes, read as UTF-8 (lossily).
fn decode_quoted_printable(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'='
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A content line: property name (upper-case, group prefix removed), parameters (name
/// upper-case — `TYPE` for bare 2.1/3.0 values — and lower-case values), raw value.
struct ContentLine<'a> {
    name: String,
    params: Vec<(String, Vec<String>)>,
    value: &'a str,
}

impl ContentLine<'_> {
    fn has_param_value(&self, param: &str, value: &str) -> bool {
        self.params
            .iter()
            .any(|(p, vs)| p == param && vs.iter().any(|v| v == value))
    }
}

fn content_line(line: &str) -> Option<ContentLine<'_>> {
    let mut in_quotes = false;
    let colon = line.char_indices().find_map(|(i, c)| {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        (c == ':' && !in_quotes).then_some(i)
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut segments = split_outside_quotes(head, ';').into_iter();
    let name = segments.next().unwrap_or_default().trim();
    let name = name
        .rsplit_once('.')
        .map_or(name, |(_, n)| n)
        .to_ascii_uppercase();
    let params = segments
        .filter(|s| !s.trim().is_empty())
        .map(|segment| {
            let (key, values) = match segment.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_uppercase(), v),
                None => ("TYPE".to_owned(), segment),
            };
            let values = values
                .split(',')
                .map(|v| v.trim().trim_matches('"').trim().to_lowercase())
                .filter(|v| !v.is_empty())
                .collect();
            (key, values)
        })
        .collect();
    Some(ContentLine { name, params, value })
}

/// Kinds of TYPE that say nothing about which number this is.
const NEUTRAL_TYPES: [&str; 5] = ["pref", "voice", "msg", "internet", "x-voice"];

fn phone(cl: &ContentLine<'_>, value: &str) -> Option<VcardPhone> {
    let mut number = value.trim();
    if let Some(scheme) = number.get(..4)
        && scheme.eq_ignore_ascii_case("tel:")
    {
        number = &number[4..];
        // URI parameters such as ;ext=123 or ;phone-context=…
        number = number.split(';').next().unwrap_or_default();
    }
    let number = number.trim();
    if number.is_empty() {
        return None;
    }
    let kind = cl
        .params
        .iter()
        .filter(|(p, _)| p == "TYPE")
        .flat_map(|(_, vs)| vs)
        .find(|v| !NEUTRAL_TYPES.contains(&v.as_str()))
        .cloned();
    let preferred = cl.has_param_value("TYPE", "pref")
        || cl
            .params
            .iter()
            .any(|(p, vs)| p == "PREF" && vs.first().is_none_or(|v| v == "1"));
    Some(VcardPhone {
        number: number.to_owned(),
        kind,
        preferred,
    })
}

/// Parses every card in `text` (see [`for_each_card`]), without limits.
pub fn parse(text: &str) -> Vec<VcardEntry> {
    let mut entries = Vec::new();
    let _ = for_each_card(text, &ImportLimits::NONE, |entry| {
        entries.push(entry);
        ControlFlow::Continue(())
    });
    entries
}

/// Reads the cards of `text` one at a time and hands each to `each` (which may stop the
/// pass); returns how many were read. Lines outside cards and unknown properties are ignored;
/// a card missing its `END:VCARD` at the end of the text is still read. More than
/// `limits.max_rows` cards, or a card with more than `limits.max_fields` phone numbers or
/// categories, stop the pass with the matching error. Never panics.
pub fn for_each_card(
    text: &str,
    limits: &ImportLimits,
    mut each: impl FnMut(VcardEntry) -> ControlFlow<()>,
) -> Result<usize, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cards = 0usize;
    let mut emit = |open: CardBuilder| -> Result<ControlFlow<()>, ImportError> {
        cards += 1;
        if cards > limits.max_rows {
            return Err(ImportError::TooManyCards(limits.max_rows));
        }
        Ok(each(open.finish()))
    };
    let mut card: Option<CardBuilder> = None;
    for (number, line) in logical_lines(text) {
        let Some(cl) = content_line(&line) else {
            continue;
        };
        match cl.name.as_str() {
            "BEGIN" if cl.value.trim().eq_ignore_ascii_case("VCARD") => {
                if let Some(open) = card.take()
                    && emit(open)?.is_break()
                {
                    return Ok(cards);
                }
                card = Some(CardBuilder {
                    line: number,
                    ..CardBuilder::default()
                });
                continue;
            }
            "END" if cl.value.trim().eq_ignore_ascii_case("VCARD") => {
                if let Some(open) = card.take()
                    && emit(open)?.is_break()
                {
                    return Ok(cards);
                }
                continue;
            }
            _ => {}
        }
        let Some(open) = card.as_mut() else {
            continue;
        };
        let decoded;
        let value = if cl.has_param_value("ENCODING", "quoted-printable") {
            decoded = decode_quoted_printable(cl.value);
            decoded.as_str()
        } else {
            cl.value
        };
        match cl.name.as_str() {
            "FN" => open.formatted_name = unescape(value).trim().to_owned(),
            "N" => {
                let parts: Vec<String> = split_unescaped(value, ';')
                    .into_iter()
                    .map(|p| {
                        split_unescaped(p, ',')
                            .into_iter()
                            .map(|v| unescape(v).trim().to_owned())
                            .filter(|v| !v.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                let family = parts.first().map_or("", String::as_str);
                let given = parts.get(1).map_or("", String::as_str);
                open.structured_name = [given, family]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            "ORG" => {
                let first = split_unescaped(value, ';').into_iter().next().unwrap_or_default();
                open.org = unescape(first).trim().to_owned();
            }
            "NOTE" => {
                let note = unescape(value);
                if !note.trim().is_empty() {
                    open.notes.push(note);
                }
            }
            "TEL" => {
                if let Some(p) = phone(&cl, value) {
                    open.phones.push(p);
                }
                if open.phones.len() > limits.max_fields {
                    return Err(ImportError::CardTooLarge {
                        line: open.line,
                        limit: limits.max_fields,
                    });
                }
            }
            "CATEGORIES" => {
                for category in split_unescaped(value, ',') {
                    let category = unescape(category).trim().to_owned();
                    if !category.is_empty() && !open.categories.contains(&category) {
                        open.categories.push(category);
                    }
                    if open.categories.len() > limits.max_fields {
                        return Err(ImportError::CardTooLarge {
                            line: open.line,
                            limit: limits.max_fields,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(open) = card {
        let _ = emit(open)?;
    }
    Ok(cards)
}

/// Kinds of number that make a good primary number for SMS.
const MOBILE_KINDS: [&str; 5] = ["cell", "mobile", "iphone", "text", "x-mobile"];
/// Longest kind shown in a name suffix, in characters.
const MAX_LABEL_CHARS: usize = 30;

/// `name (label)`, shortening the name so the whole stays within the name limit.
fn labelled(name: &str, label: &str) -> String {
    let label: String = label.chars().take(MAX_LABEL_CHARS).collect();
    let room = MAX_NAME_CHARS.saturating_sub(label.chars().count() + 3);
    let base: String = name.chars().take(room).collect();
    format!("{} ({label})", base.trim_end()).trim_start().to_owned()
}

/// One contact per distinct valid number of each card. The preferred number (else the first
/// mobile one, else the first) keeps the plain name; the others get the kind in parentheses
/// ("Ana (work)"), or their position ("Ana (2)") when the kind is missing or already used.
/// Invalid numbers, cards without numbers and over-long names or notes are errors at the
/// card's line.
pub fn entries_to_drafts(
    entries: &[VcardEntry],
    default_country: Option<&str>,
) -> Vec<Result<ContactDraft, RowError>> {
    let mut out = Vec::new();
    for entry in entries {
        let card_error = |value: &str, message: String| RowError {
            line: entry.line,
            value: value.to_owned(),
            message,
        };
        if entry.phones.is_empty() {
            out.push(Err(card_error(
                &entry.name,
                "This card has no phone number.".to_owned(),
            )));
            continue;
        }
        if entry.name.chars().count() > MAX_NAME_CHARS {
            out.push(Err(card_error(
                &entry.name,
                format!("Name is longer than {MAX_NAME_CHARS} characters."),
            )));
            continue;
        }
        if entry.notes.chars().count() > MAX_NOTES_CHARS {
            out.push(Err(card_error(
                &entry.notes,
                format!("Notes are longer than {MAX_NOTES_CHARS} characters."),
            )));
            continue;
        }
        // Normalise, keeping the first occurrence of each number.
        let mut valid: Vec<(String, &VcardPhone)> = Vec::new();
        for phone in &entry.phones {
            match normalise_phone(&phone.number, default_country) {
                Ok(e164) => {
                    if !valid.iter().any(|(seen, _)| *seen == e164) {
                        valid.push((e164, phone));
                    }
                }
                Err(message) => out.push(Err(card_error(&phone.number, message))),
            }
        }
        let is_mobile = |p: &VcardPhone| p.kind.as_deref().is_some_and(|k| MOBILE_KINDS.contains(&k));
        let primary = valid
            .iter()
            .position(|(_, p)| p.preferred)
            .or_else(|| valid.iter().position(|(_, p)| is_mobile(p)))
            .unwrap_or(0);
        let mut used_labels: Vec<String> = Vec::new();
        let mut position = 1usize;
        for (i, (e164, phone)) in valid.iter().enumerate() {
            let name = if i == primary {
                entry.name.clone()
            } else {
                position += 1;
                let label = match &phone.kind {
                    Some(kind) if !used_labels.contains(kind) => kind.clone(),
                    _ => position.to_string(),
                };
                used_labels.push(label.clone());
                labelled(&entry.name, &label)
            };
            out.push(Ok(ContactDraft {
                name,
                phone: e164.clone(),
                notes: entry.notes.clone(),
                groups: entry.categories.clone(),
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tel(number: &str, kind: Option<&str>, preferred: bool) -> VcardPhone {
        VcardPhone {
            number: number.into(),
            kind: kind.map(Into::into),
            preferred,
        }
    }

    #[test]
    fn parses_a_3_0_card() {
        let text = "BEGIN:VCARD\r\n\
                    VERSION:3.0\r\n\
                    N:Silva;Ana;;;\r\n\
                    FN:Ana Silva\r\n\
                    TEL;TYPE=CELL,VOICE;TYPE=PREF:+1 555 123 4567\r\n\
                    TEL;TYPE=WORK:+1-555-765-4321\r\n\
                    item1.TEL;HOME:+44 20 7946 0958\r\n\
                    item1.X-ABLabel:home\r\n\
                    NOTE:Line one\\nLine two\\, with comma\\; and semicolon \\\\ done\r\n\
                    CATEGORIES:Friends,Work\\,Colleagues\r\n\
                    END:VCARD\r\n";
        let entries = parse(text);
        assert_eq!(
            entries,
            [VcardEntry {
                line: 1,
                name: "Ana Silva".into(),
                phones: vec![
                    tel("+1 555 123 4567", Some("cell"), true),
                    tel("+1-555-765-4321", Some("work"), false),
                    tel("+44 20 7946 0958", Some("home"), false),
                ],
                notes: "Line one\nLine two, with comma; and semicolon \\ done".into(),
                categories: vec!["Friends".into(), "Work,Colleagues".into()],
            }]
        );
    }

    #[test]
    fn parses_a_4_0_card() {
        let text = "BEGIN:VCARD\n\
                    VERSION:4.0\n\
                    N:Núñez;José;;;\n\
                    TEL;VALUE=uri;TYPE=\"voice,home\":tel:+1-555-555-5555;ext=5555\n\
                    TEL;VALUE=uri;PREF=1;type=\"cell\":tel:+33123456789\n\
                    TEL;VALUE=uri;PREF=2;TYPE=work:TEL:+4915112345678\n\
                    NOTE;LANGUAGE=es:Hola\\Ncaracola\n\
                    END:VCARD\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.name, "José Núñez");
        assert_eq!(e.notes, "Hola\ncaracola");
        assert_eq!(
            e.phones,
            [
                tel("+1-555-555-5555", Some("home"), false),
                tel("+33123456789", Some("cell"), true),
                tel("+4915112345678", Some("work"), false),
            ]
        );
    }

    #[test]
    fn unfolds_lines_and_tracks_card_lines() {
        let text = "garbage before\n\
                    \n\
                    BEGIN:VCARD\n\
                    VERSION:3.0\n\
                    FN:Ana Maria da Sil\n va Santos\n\
                    NOTE:This note is long and was fol\r\n\tded twice by a very pic\r\n ky writer\n\
                    TEL:+15551234567\n\
                    END:VCARD\n\
                    begin:vcard\n\
                    fn:Bo\n\
                    tel;type=cell:+15557654321\n\
                    end:vcard\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[0].name, "Ana Maria da Silva Santos");
        assert_eq!(
            entries[0].notes,
            "This note is long and was folded twice by a very picky writer"
        );
        assert_eq!(entries[0].phones, [tel("+15551234567", None, false)]);
        assert_eq!(entries[1].line, 12);
        assert_eq!(entries[1].name, "Bo");
        assert_eq!(entries[1].phones, [tel("+15557654321", Some("cell"), false)]);
    }

    #[test]
    fn name_falls_back_to_n_then_org() {
        let entries = parse(
            "BEGIN:VCARD\nN:Family;Given;Middle;Dr.;Jr.\nTEL:+15551234567\nEND:VCARD\n\
             BEGIN:VCARD\nFN:\nORG:Acme\\, Inc.;Sales\nTEL:+15551234567\nEND:VCARD\n\
             BEGIN:VCARD\nN:;;;;\nTEL:+15551234567\nEND:VCARD\n",
        );
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Given Family", "Acme, Inc.", ""]);
    }

    #[test]
    fn a_card_without_end_is_kept_and_a_new_begin_closes_the_previous_one() {
        let entries = parse("BEGIN:VCARD\nFN:A\nTEL:+15551234567\nBEGIN:VCARD\nFN:B\nTEL:+15557654321");
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].name.as_str(), entries[0].line), ("A", 1));
        assert_eq!((entries[1].name.as_str(), entries[1].line), ("B", 4));
        assert!(parse("FN:Nobody\nTEL:+15551234567\nEND:VCARD\n").is_empty());
        assert!(parse("").is_empty());
    }

    #[test]
    fn reads_2_1_quoted_printable() {
        let text = "BEGIN:VCARD\r\nVERSION:2.1\r\n\
                    N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:N=C3=BA=C3=B1ez;Jos=C3=A9;;;\r\n\
                    NOTE;ENCODING=QUOTED-PRINTABLE:first =\r\nsecond\r\n\
                    TEL;CELL;PREF:+15551234567\r\n\
                    END:VCARD\r\n";
        let e = &parse(text)[0];
        assert_eq!(e.name, "José Núñez");
        assert_eq!(e.notes, "first second");
        assert_eq!(e.phones, [tel("+15551234567", Some("cell"), true)]);
    }

    fn entry(name: &str, phones: Vec<VcardPhone>) -> VcardEntry {
        VcardEntry {
            line: 7,
            name: name.into(),
            phones,
            notes: "n".into(),
            categories: vec!["G".into()],
        }
    }

    fn draft(name: &str, phone: &str) -> ContactDraft {
        ContactDraft {
            name: name.into(),
            phone: phone.into(),
            notes: "n".into(),
            groups: vec!["G".into()],
        }
    }

    #[test]
    fn several_numbers_become_several_contacts() {
        let e = entry(
            "Ana",
            vec![
                tel("+1 555 765 4321", Some("work"), false),
                tel("+15551234567", Some("cell"), false),
                tel("+1-555-123-4567", Some("home"), false),
                tel("+15550000001", None, false),
                tel("+15550000002", Some("work"), false),
            ],
        );
        assert_eq!(
            entries_to_drafts(&[e], None),
            [
                Ok(draft("Ana (work)", "+15557654321")),
                Ok(draft("Ana", "+15551234567")),
                Ok(draft("Ana (3)", "+15550000001")),
                Ok(draft("Ana (4)", "+15550000002")),
            ]
        );
    }

    #[test]
    fn the_preferred_number_keeps_the_name() {
        let e = entry(
            "Bo",
            vec![
                tel("+15551234567", Some("cell"), false),
                tel("020 7946 0958", Some("work"), true),
            ],
        );
        assert_eq!(
            entries_to_drafts(&[e], Some("44")),
            [
                Ok(draft("Bo (cell)", "+15551234567")),
                Ok(draft("Bo", "+442079460958"))
            ]
        );
    }

    #[test]
    fn bad_numbers_and_empty_cards_are_errors_at_the_card_line() {
        let results = entries_to_drafts(
            &[
                entry(
                    "Cy",
                    vec![tel("abc", Some("cell"), false), tel("+15551234567", None, false)],
                ),
                entry("Dee", vec![]),
                entry(&"x".repeat(201), vec![tel("+15551234567", None, false)]),
            ],
            None,
        );
        assert_eq!(results.len(), 4);
        let e = results[0].clone().unwrap_err();
        assert_eq!((e.line, e.value.as_str()), (7, "abc"));
        assert!(e.message.starts_with("Invalid phone number \"abc\""));
        assert_eq!(results[1], Ok(draft("Cy", "+15551234567")));
        let e = results[2].clone().unwrap_err();
        assert_eq!(
            (e.line, e.value.as_str(), e.message.as_str()),
            (7, "Dee", "This card has no phone number.")
        );
        assert_eq!(
            results[3].clone().unwrap_err().message,
            "Name is longer than 200 characters."
        );
    }

    #[test]
    fn long_names_with_labels_stay_within_the_limit() {
        let e = entry(
            &"y".repeat(200),
            vec![
                tel("+15551234567", None, false),
                tel("+15557654321", Some("work"), false),
            ],
        );
        let results = entries_to_drafts(&[e], None);
        let second = results[1].clone().unwrap();
        assert!(second.name.ends_with("y (work)"));
        assert_eq!(second.name.chars().count(), 200);
    }

    proptest! {
        #[test]
        fn parse_never_panics(
            chars in prop::collection::vec(prop_oneof![
                3 => any::<char>(),
                2 => prop::sample::select(vec![':', ';', '=', ',', '"', '\\', '\n', '\r', ' ', '\t', '.']),
            ], 0..300),
            prefix in any::<bool>(),
        ) {
            let mut text = String::new();
            if prefix {
                text.push_str("BEGIN:VCARD\nTEL;TYPE=");
            }
            text.extend(chars);
            let entries = parse(&text);
            let _ = entries_to_drafts(&entries, Some("1"));
        }

        #[test]
        fn parse_never_panics_on_card_like_text(
            lines in prop::collection::vec(prop::sample::select(vec![
                "BEGIN:VCARD", "END:VCARD", "FN:A\\", "N:;", "TEL;TYPE=\"cell:+1", "TEL:tel:", " x", "\tQ",
                "NOTE;ENCODING=QUOTED-PRINTABLE:=", "=C3", "=", "CATEGORIES:,\\,", "item.TEL;PREF=:0",
            ]), 0..40),
        ) {
            let text = lines.join("\r\n");
            let _ = entries_to_drafts(&parse(&text), None);
        }
    }
}
