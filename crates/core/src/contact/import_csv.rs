//! CSV import: decoding the upload, sniffing the delimiter, parsing into a table, guessing the
//! column mapping and turning rows into contact drafts (or per-row errors).
//!
//! The text of at most [`MAX_IMPORT_BYTES`] is held in memory; rows are read one at a time
//! ([`scan_table`]) so nothing else grows with the file, and [`ImportLimits`] caps rows,
//! fields per row and characters per field. 100,000 rows take well under a second.

use std::ops::ControlFlow;

use crate::config::TenantLimits;
use crate::sms::phone::PhoneNumber;

/// Largest upload accepted.
pub const MAX_IMPORT_BYTES: usize = 20 * 1024 * 1024;
/// Longest contact name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest contact notes, in characters.
pub const MAX_NOTES_CHARS: usize = 2000;

/// How many records [`sniff_delimiter`] looks at.
const SNIFF_RECORDS: usize = 50;
/// The delimiters [`sniff_delimiter`] chooses from, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The text encoding an upload was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl TextEncoding {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Utf16Le | Self::Utf16Be => "UTF-16",
            Self::Windows1252 => "Windows-1252",
        }
    }
}

/// Caps on one import, from `ENDER_IMPORT_MAX_ROWS`, `ENDER_IMPORT_MAX_FIELDS` and
/// `ENDER_IMPORT_MAX_FIELD_CHARS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Data rows of a CSV file, cards of a vCard file.
    pub max_rows: usize,
    /// Fields of a CSV row; phone numbers and categories of a card.
    pub max_fields: usize,
    /// Characters of one CSV field.
    pub max_field_chars: usize,
}

impl ImportLimits {
    /// No caps (for tests and tools reading trusted files).
    pub const NONE: Self = Self {
        max_rows: usize::MAX,
        max_fields: usize::MAX,
        max_field_chars: usize::MAX,
    };
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self::from(&TenantLimits::default())
    }
}

impl From<&TenantLimits> for ImportLimits {
    fn from(l: &TenantLimits) -> Self {
        Self {
            max_rows: l.import_max_rows,
            max_fields: l.import_max_fields,
            max_field_chars: l.import_max_field_chars,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("The file is empty.")]
    Empty,
    #[error("This file is not text (is it an Excel .xlsx? Save it as CSV first).")]
    NotText,
    #[error("The file is larger than the 20 MiB limit.")]
    TooLarge,
    #[error("Line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error(
        "The file has more than {0} rows, the most one import may hold (ENDER_IMPORT_MAX_ROWS). Split it into smaller files."
    )]
    TooManyRows(usize),
    #[error(
        "The file has more than {0} cards, the most one import may hold (ENDER_IMPORT_MAX_ROWS). Split it into smaller files."
    )]
    TooManyCards(usize),
    #[error(
        "Line {line}: this row has more than {limit} columns, the most a row may have (ENDER_IMPORT_MAX_FIELDS)."
    )]
    TooManyFields { line: usize, limit: usize },
    #[error(
        "Line {line}: a value is longer than {limit} characters, the longest a field may be (ENDER_IMPORT_MAX_FIELD_CHARS)."
    )]
    FieldTooLong { line: usize, limit: usize },
    #[error(
        "Line {line}: this card has more than {limit} phone numbers or categories, the most a card may have (ENDER_IMPORT_MAX_FIELDS)."
    )]
    CardTooLarge { line: usize, limit: usize },
}

/// Detects the encoding and decodes.
///
/// UTF-8 (with or without BOM) and UTF-16 LE/BE with a BOM are recognised; bytes that are not
/// valid UTF-8 and contain no NUL are read as Windows-1252 (the usual Excel export). NUL bytes
/// without a UTF-16 BOM mean a binary file (an .xlsx, an image…): [`ImportError::NotText`].
/// Larger than [`MAX_IMPORT_BYTES`] is [`ImportError::TooLarge`]; nothing (or only a BOM) is
/// [`ImportError::Empty`]. The BOM is not part of the returned text.
pub fn decode(bytes: &[u8]) -> Result<(String, TextEncoding), ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge);
    }
    decode_owned(bytes.to_vec())
}

/// [`decode`] taking the bytes, so UTF-8 (the usual upload) becomes the text without a copy.
pub fn decode_owned(mut bytes: Vec<u8>) -> Result<(String, TextEncoding), ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge);
    }
    let (text, encoding) = if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
        let text =
            String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        (text, TextEncoding::Utf8)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        let (text, _) = encoding_rs::UTF_16LE.decode_without_bom_handling(rest);
        (text.into_owned(), TextEncoding::Utf16Le)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let (text, _) = encoding_rs::UTF_16BE.decode_without_bom_handling(rest);
        (text.into_owned(), TextEncoding::Utf16Be)
    } else if bytes.contains(&0) {
        return Err(ImportError::NotText);
    } else {
        match String::from_utf8(bytes) {
            Ok(text) => (text, TextEncoding::Utf8),
            Err(e) => {
                let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(e.as_bytes());
                (text.into_owned(), TextEncoding::Windows1252)
            }
        }
    };
    if text.is_empty() {
        return Err(ImportError::Empty);
    }
    if text.contains('\0') {
        return Err(ImportError::NotText);
    }
    Ok((text, encoding))
}

fn reader(text: &str, delimiter: u8) -> ::csv::Reader<&[u8]> {
    ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// Picks the delimiter among `,` `;` TAB `|` whose field counts are the most consistent over the
/// first records (quotes respected); more fields wins a tie, then the order above. A file with a
/// single column gives `,`.
pub fn sniff_delimiter(text: &str) -> u8 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut best = (b',', 0u64, 0usize);
    for delimiter in DELIMITERS {
        let mut counts: Vec<usize> = Vec::with_capacity(SNIFF_RECORDS);
        let mut rdr = reader(text, delimiter);
        let mut record = ::csv::StringRecord::new();
        while counts.len() < SNIFF_RECORDS {
            match rdr.read_record(&mut record) {
                Ok(true) => {
                    if record.iter().any(|f| !f.trim().is_empty()) {
                        counts.push(record.len());
                    }
                }
                Ok(false) | Err(_) => break,
            }
        }
        // The most frequent count (the larger one on a tie), and how many records have it.
        let mut mode = (0usize, 0usize);
        for &count in &counts {
            let freq = counts.iter().filter(|&&c| c == count).count();
            if (freq, count) > (mode.1, mode.0) {
                mode = (count, freq);
            }
        }
        if mode.0 < 2 {
            continue;
        }
        // Consistency in per-mille, to compare without floats.
        let consistency = (mode.1 as u64 * 1000) / counts.len() as u64;
        if (consistency, mode.0) > (best.1, best.2) {
            best = (delimiter, consistency, mode.0);
        }
    }
    best.0
}

/// A parsed file: headers and the non-empty rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    /// One per column (as wide as the widest row); "Column N" where the file has none.
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    /// Trimmed fields; a row may be shorter or longer than the headers.
    pub fields: Vec<String>,
}

/// Counts line breaks (`\n`, `\r\n` or a lone `\r`) incrementally, so finding the line of each
/// record start is linear overall.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl LineCounter<'_> {
    /// The line of the first byte at or after `offset` that is not a line break.
    fn line_of_record_at(&mut self, offset: usize) -> usize {
        let mut target = offset.min(self.bytes.len());
        while target < self.bytes.len() && matches!(self.bytes[target], b'\r' | b'\n') {
            target += 1;
        }
        if target < self.offset {
            return self.line;
        }
        for i in self.offset..target {
            match self.bytes[i] {
                b'\n' => self.line += 1,
                b'\r' if self.bytes.get(i + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
        }
        self.offset = target;
        self.line
    }
}

/// What a pass over a whole file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// One per column (as wide as the widest row); "Column N" where the file has none.
    pub headers: Vec<String>,
    /// Non-empty data rows.
    pub rows: usize,
}

/// One data row as [`scan_table`] reads it, borrowed from the reader.
pub struct RowRef<'a> {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    record: &'a ::csv::StringRecord,
}

impl RowRef<'_> {
    pub fn to_row(&self) -> Row {
        Row {
            line: self.line,
            fields: self.record.iter().map(|f| f.trim().to_owned()).collect(),
        }
    }
}

/// Reads `text` as CSV with the csv crate, one record at a time: flexible field counts, trimmed
/// fields, fully empty rows skipped. With `has_header`, the first non-empty row gives the
/// headers. Each data row goes to `each` (which may stop the pass: the row count is then the
/// rows seen so far). A row with more fields than `limits.max_fields`, a field longer than
/// `limits.max_field_chars` characters or more than `limits.max_rows` rows stop the pass with
/// the matching error; a file without any data row is [`ImportError::Empty`].
pub fn scan_table(
    text: &str,
    delimiter: u8,
    has_header: bool,
    limits: &ImportLimits,
    mut each: impl FnMut(RowRef<'_>) -> ControlFlow<()>,
) -> Result<Shape, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = reader(text, delimiter);
    let mut lines = LineCounter {
        bytes: text.as_bytes(),
        offset: 0,
        line: 1,
    };
    let mut record = ::csv::StringRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut rows = 0usize;
    let mut width = 0usize;
    loop {
        let start = rdr.position().byte();
        let at = |lines: &mut LineCounter<'_>, byte: u64| {
            lines.line_of_record_at(usize::try_from(byte).unwrap_or(usize::MAX))
        };
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => {
                let line = at(&mut lines, err.position().map_or(start, |p| p.byte()));
                return Err(ImportError::Csv {
                    line,
                    message: csv_message(&err),
                });
            }
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if record.len() > limits.max_fields {
            return Err(ImportError::TooManyFields {
                line: at(&mut lines, start),
                limit: limits.max_fields,
            });
        }
        let too_long =
            |f: &str| f.len() > limits.max_field_chars && f.trim().chars().count() > limits.max_field_chars;
        if record.iter().any(too_long) {
            return Err(ImportError::FieldTooLong {
                line: at(&mut lines, start),
                limit: limits.max_field_chars,
            });
        }
        if has_header && header.is_none() {
            header = Some(record.iter().map(|f| f.trim().to_owned()).collect());
            continue;
        }
        rows += 1;
        if rows > limits.max_rows {
            return Err(ImportError::TooManyRows(limits.max_rows));
        }
        width = width.max(record.len());
        let line = at(&mut lines, start);
        if each(RowRef {
            line,
            record: &record,
        })
        .is_break()
        {
            break;
        }
    }
    if rows == 0 {
        return Err(ImportError::Empty);
    }
    let mut headers = header.unwrap_or_default();
    width = width.max(headers.len());
    headers.resize(width, String::new());
    for (i, h) in headers.iter_mut().enumerate() {
        if h.is_empty() {
            *h = format!("Column {}", i + 1);
        }
    }
    Ok(Shape { headers, rows })
}

/// The whole file as a [`Table`] (see [`scan_table`]), under the default limits.
pub fn parse_table(text: &str, delimiter: u8, has_header: bool) -> Result<Table, ImportError> {
    let mut rows = Vec::new();
    let shape = scan_table(text, delimiter, has_header, &ImportLimits::default(), |row| {
        rows.push(row.to_row());
        ControlFlow::Continue(())
    })?;
    Ok(Table {
        headers: shape.headers,
        rows,
    })
}

fn csv_message(err: &::csv::Error) -> String {
    let message = match err.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8".to_owned(),
        _ => err.to_string(),
    };
    let mut message = message.trim_end_matches('.').to_owned();
    if let Some(first) = message.get(..1) {
        let upper = first.to_uppercase();
        message.replace_range(..1, &upper);
    }
    message.push('.');
    message
}

/// Which column (0-based) holds which contact field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnMapping {
    pub name: Option<usize>,
    pub phone: Option<usize>,
    pub notes: Option<usize>,
    pub groups: Option<usize>,
}

/// Lower-cases and turns every run of non-alphanumeric characters into one space.
fn normalise_header(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for c in header.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

// Exact header names (normalised), best first; then words that suggest the field.
const PHONE_MOBILE: &[&str] = &[
    "mobile",
    "mobile phone",
    "mobile number",
    "cell",
    "cell phone",
    "cellphone",
    "cell number",
    "mobil",
    "handy",
    "handynummer",
    "mobilnummer",
    "portable",
    "téléphone portable",
    "móvil",
    "movil",
    "celular",
    "cellulare",
    "telefone celular",
    "mobiel",
    "gsm",
    "msisdn",
];
const PHONE_EXACT: &[&str] = &[
    "phone",
    "phone number",
    "phonenumber",
    "number",
    "tel",
    "telephone",
    "telephone number",
    "tel no",
    "phone no",
    "contact number",
    "whatsapp",
    "sms",
    "telefon",
    "telefonnummer",
    "rufnummer",
    "téléphone",
    "telephone fixe",
    "numéro",
    "numero",
    "teléfono",
    "telefono",
    "número",
    "telefone",
    "nummer",
    "telefoonnummer",
    "phone 1 value",
    "e164",
];
const PHONE_WORDS: &[&str] = &[
    "phone",
    "mobile",
    "cell",
    "tel",
    "number",
    "telefon",
    "téléphone",
    "teléfono",
];
const NAME_EXACT: &[&str] = &[
    "name",
    "full name",
    "fullname",
    "display name",
    "displayname",
    "contact",
    "contact name",
    "customer",
    "customer name",
    "nom",
    "nom complet",
    "nombre",
    "nombre completo",
    "nome",
    "nome completo",
    "naam",
    "volledige naam",
    "vollständiger name",
    "namn",
    "navn",
    "nimi",
    "imię",
    "imię i nazwisko",
    "fn",
];
const NAME_FIRST: &[&str] = &[
    "first name",
    "firstname",
    "given name",
    "givenname",
    "forename",
    "vorname",
    "prénom",
    "prenom",
    "primer nombre",
    "voornaam",
    "fornavn",
    "förnamn",
    "given name yomi",
];
const NAME_EXCLUDE: &[&str] = &[
    "last",
    "family",
    "surname",
    "middle",
    "user",
    "file",
    "company",
    "nachname",
    "apellido",
    "cognome",
    "achternaam",
    "nick",
    "yomi",
    "suffix",
    "prefix",
    "group",
    "list",
];
const NOTES_EXACT: &[&str] = &[
    "notes",
    "note",
    "comment",
    "comments",
    "remark",
    "remarks",
    "description",
    "memo",
    "notizen",
    "notiz",
    "bemerkung",
    "bemerkungen",
    "kommentar",
    "remarque",
    "remarques",
    "commentaire",
    "commentaires",
    "nota",
    "notas",
    "comentario",
    "comentarios",
    "opmerking",
    "opmerkingen",
];
const NOTES_WORDS: &[&str] = &["note", "comment", "remark"];
const GROUPS_EXACT: &[&str] = &[
    "groups",
    "group",
    "tags",
    "tag",
    "labels",
    "label",
    "categories",
    "category",
    "lists",
    "list",
    "segment",
    "segments",
    "group membership",
    "gruppe",
    "gruppen",
    "groupe",
    "groupes",
    "étiquettes",
    "grupo",
    "grupos",
    "etiquetas",
    "gruppo",
    "gruppi",
    "groep",
    "groepen",
];
const GROUPS_WORDS: &[&str] = &["group", "tag", "categor"];

fn has_word(header: &str, words: &[&str]) -> bool {
    header.split(' ').any(|w| words.iter().any(|x| w.starts_with(x)))
}

/// Guesses the mapping from the header names (case-insensitive, English and the common
/// European languages). A column is used for one field at most.
pub fn guess_mapping(headers: &[String]) -> ColumnMapping {
    let normalised: Vec<String> = headers.iter().map(|h| normalise_header(h)).collect();
    let mut taken = vec![false; headers.len()];

    let mut pick = |score: &dyn Fn(&str) -> u8| -> Option<usize> {
        let mut best: Option<(usize, u8)> = None;
        for (i, h) in normalised.iter().enumerate() {
            if taken[i] || h.is_empty() {
                continue;
            }
            let s = score(h);
            if s > 0 && best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        let (i, _) = best?;
        taken[i] = true;
        Some(i)
    };

    let describes_kind = |h: &str| has_word(h, &["type", "label", "kind", "typ"]);
    let phone = pick(&|h| {
        if PHONE_MOBILE.contains(&h) {
            5
        } else if PHONE_EXACT.contains(&h) {
            4
        } else if describes_kind(h) {
            0
        } else if has_word(h, &["mobile", "cell", "handy", "mobil", "celular"]) {
            3
        } else if has_word(h, PHONE_WORDS) {
            2
        } else {
            0
        }
    });
    let name = pick(&|h| {
        if NAME_EXACT.contains(&h) {
            4
        } else if NAME_FIRST.contains(&h) {
            3
        } else if has_word(h, NAME_EXCLUDE) {
            0
        } else if has_word(h, &["name", "nom", "nombre", "nome", "naam"]) {
            2
        } else {
            0
        }
    });
    let notes = pick(&|h| {
        if NOTES_EXACT.contains(&h) {
            2
        } else if has_word(h, NOTES_WORDS) {
            1
        } else {
            0
        }
    });
    let groups = pick(&|h| {
        if GROUPS_EXACT.contains(&h) {
            2
        } else if has_word(h, GROUPS_WORDS) {
            1
        } else {
            0
        }
    });
    ColumnMapping {
        name,
        phone,
        notes,
        groups,
    }
}

/// A contact ready to be saved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContactDraft {
    /// Possibly empty.
    pub name: String,
    /// E.164.
    pub phone: String,
    pub notes: String,
    /// Trimmed, non-empty, each once, in file order.
    pub groups: Vec<String>,
}

/// A row (or vCard) that could not become a contact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based line in the file.
    pub line: usize,
    /// The raw phone number, or the offending value.
    pub value: String,
    /// A sentence for the user.
    pub message: String,
}

fn invalid_phone(raw: &str, default_country: Option<&str>) -> String {
    if default_country.is_some() {
        format!(
            "Invalid phone number \"{raw}\": use E.164 like +15551234567 or a national number of the default country."
        )
    } else {
        format!("Invalid phone number \"{raw}\": use E.164 like +15551234567 or set a default country code.")
    }
}

/// Normalises a phone number to E.164.
///
/// `+…` numbers go through [`PhoneNumber::parse`]; `00…` (and `011…` when the default country
/// is 1) is the international prefix. With `default_country` (calling code digits like "44" or
/// "1", an optional leading `+` allowed), a national number, with or without its trunk prefix 0,
/// becomes `+<cc><digits>`. A `tel:` prefix is ignored.
pub fn normalise_phone(raw: &str, default_country: Option<&str>) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("Phone number is missing.".to_owned());
    }
    let default_country = match default_country.map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(cc) => {
            let digits = cc.strip_prefix('+').unwrap_or(cc);
            let valid = (1..=3).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !valid {
                return Err(format!(
                    "Invalid default country code \"{cc}\": use the calling code digits, like 44 or 1."
                ));
            }
            Some(digits)
        }
    };
    let body = match trimmed.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("tel:") => trimmed[4..].trim(),
        _ => trimmed,
    };
    let fail = || invalid_phone(trimmed, default_country);
    if body.starts_with('+') {
        return PhoneNumber::parse(body)
            .map(PhoneNumber::into_string)
            .map_err(|_| fail());
    }
    let digits: String = body
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}'))
        .collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail());
    }
    let international = if let Some(rest) = digits.strip_prefix("00") {
        Some(rest)
    } else if default_country == Some("1") {
        digits.strip_prefix("011")
    } else {
        None
    };
    let e164 = match (international, default_country) {
        (Some(rest), _) => format!("+{rest}"),
        (None, Some(cc)) => {
            let national = if cc == "1" && digits.len() == 11 {
                // NANP: the trunk prefix is 1 (1 555 123 4567).
                digits.strip_prefix('1').unwrap_or(&digits)
            } else {
                digits.strip_prefix('0').unwrap_or(&digits)
            };
            format!("+{cc}{national}")
        }
        (None, None) => return Err(fail()),
    };
    PhoneNumber::parse(&e164)
        .map(PhoneNumber::into_string)
        .map_err(|_| fail())
}

fn field(row: &Row, column: Option<usize>) -> &str {
    column.and_then(|i| row.fields.get(i)).map_or("", String::as_str)
}

/// Splits a groups cell on `;` or `|`; trimmed, non-empty, each once.
pub fn split_groups(cell: &str) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for g in cell.split([';', '|']).map(str::trim).filter(|g| !g.is_empty()) {
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_owned());
        }
    }
    groups
}

/// Checks the lengths of a draft's name and notes.
pub(crate) fn check_lengths(draft: ContactDraft, line: usize) -> Result<ContactDraft, RowError> {
    if draft.name.chars().count() > MAX_NAME_CHARS {
        return Err(RowError {
            line,
            value: draft.name,
            message: format!("Name is longer than {MAX_NAME_CHARS} characters."),
        });
    }
    if draft.notes.chars().count() > MAX_NOTES_CHARS {
        return Err(RowError {
            line,
            value: draft.notes,
            message: format!("Notes are longer than {MAX_NOTES_CHARS} characters."),
        });
    }
    Ok(draft)
}

/// Turns a row into a draft or an error: a missing or invalid phone number, a name longer
/// than 200 characters, notes longer than 2000. The name may be empty.
pub fn row_to_draft(
    row: &Row,
    mapping: &ColumnMapping,
    default_country: Option<&str>,
) -> Result<ContactDraft, RowError> {
    let raw_phone = field(row, mapping.phone);
    if raw_phone.is_empty() {
        return Err(RowError {
            line: row.line,
            value: String::new(),
            message: "Phone number is missing.".to_owned(),
        });
    }
    let phone = normalise_phone(raw_phone, default_country).map_err(|message| RowError {
        line: row.line,
        value: raw_phone.to_owned(),
        message,
    })?;
    let draft = ContactDraft {
        name: field(row, mapping.name).to_owned(),
        phone,
        notes: field(row, mapping.notes).to_owned(),
        groups: split_groups(field(row, mapping.groups)),
    };
    check_lengths(draft, row.line)
}

/// [`row_to_draft`] for every row of a table.
pub fn rows_to_drafts(
    table: &Table,
    mapping: &ColumnMapping,
    default_country: Option<&str>,
) -> Vec<Result<ContactDraft, RowError>> {
    table
        .rows
        .iter()
        .map(|row| row_to_draft(row, mapping, default_country))
        .collect()
}

/// A CSV of the failed rows, for download: `line,value,error`, UTF-8 with BOM, cells guarded
/// against formula injection.
pub fn errors_csv(errors: &[RowError]) -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    out.extend_from_slice(b"line,value,error\r\n");
    for e in errors {
        super::export::push_csv_record(
            &mut out,
            &[
                &e.line.to_string(),
                &super::export::guard_formula(&e.value),
                &super::export::guard_formula(&e.message),
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn table(text: &str) -> Table {
        parse_table(text, sniff_delimiter(text), true).unwrap()
    }

    fn ok_drafts(results: Vec<Result<ContactDraft, RowError>>) -> Vec<ContactDraft> {
        results.into_iter().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn decodes_utf8_with_and_without_bom() {
        assert_eq!(
            decode("José,+1".as_bytes()).unwrap(),
            ("José,+1".into(), TextEncoding::Utf8)
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice("José".as_bytes());
        assert_eq!(decode(&bom).unwrap(), ("José".into(), TextEncoding::Utf8));
        assert_eq!(TextEncoding::Utf8.label(), "UTF-8");
    }

    #[test]
    fn decodes_utf16_with_bom() {
        let text = "name,phone\nJosé 😀,+15551234567\n";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in text.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(decode(&le).unwrap(), (text.into(), TextEncoding::Utf16Le));
        assert_eq!(decode(&be).unwrap(), (text.into(), TextEncoding::Utf16Be));
        assert_eq!(TextEncoding::Utf16Be.label(), "UTF-16");
    }

    #[test]
    fn decodes_windows_1252() {
        let bytes = b"name;phone\nJos\xe9 \x80;+15551234567\n";
        let (text, enc) = decode(bytes).unwrap();
        assert_eq!(enc, TextEncoding::Windows1252);
        assert_eq!(enc.label(), "Windows-1252");
        assert_eq!(text, "name;phone\nJosé €;+15551234567\n");
    }

    #[test]
    fn binary_files_are_not_text() {
        let xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml";
        assert!(matches!(decode(xlsx), Err(ImportError::NotText)));
        assert!(matches!(decode(b"a,b\n\0\0"), Err(ImportError::NotText)));
        // UTF-16 without a BOM looks binary too.
        assert!(matches!(decode(b"a\0,\0b\0"), Err(ImportError::NotText)));
    }

    #[test]
    fn empty_and_too_large_files_are_refused() {
        assert!(matches!(decode(b""), Err(ImportError::Empty)));
        assert!(matches!(decode(b"\xEF\xBB\xBF"), Err(ImportError::Empty)));
        assert!(matches!(
            decode(&vec![b'a'; MAX_IMPORT_BYTES + 1]),
            Err(ImportError::TooLarge)
        ));
        assert!(decode(&vec![b'a'; MAX_IMPORT_BYTES]).is_ok());
        assert!(matches!(parse_table("", b',', true), Err(ImportError::Empty)));
        assert!(matches!(
            parse_table("\n , \n\n", b',', false),
            Err(ImportError::Empty)
        ));
        assert!(matches!(
            parse_table("name,phone\n", b',', true),
            Err(ImportError::Empty)
        ));
        assert_eq!(ImportError::Empty.to_string(), "The file is empty.");
    }

    #[test]
    fn decode_owned_keeps_the_bytes_of_utf8() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice("Zoë,+1".as_bytes());
        assert_eq!(decode_owned(bom).unwrap(), ("Zoë,+1".into(), TextEncoding::Utf8));
        let invalid = b"\xEF\xBB\xBFa\xff".to_vec();
        assert_eq!(decode_owned(invalid).unwrap().0, "a\u{fffd}");
        let plain = "a,b".as_bytes().to_vec();
        let at = plain.as_ptr();
        let (text, _) = decode_owned(plain).unwrap();
        assert_eq!(text.as_ptr(), at, "no copy");
    }

    #[test]
    fn scans_within_limits_and_names_each_one() {
        let limits = ImportLimits {
            max_rows: 2,
            max_fields: 3,
            max_field_chars: 5,
        };
        let count = |text: &str| scan_table(text, b',', true, &limits, |_| ControlFlow::Continue(()));
        assert_eq!(
            count("h\n\na\nb\n").unwrap(),
            Shape {
                headers: vec!["h".into()],
                rows: 2
            }
        );
        assert_eq!(count("h\na\nb\nc\n"), Err(ImportError::TooManyRows(2)));
        assert_eq!(
            count("h\na,b,c,d\n"),
            Err(ImportError::TooManyFields { line: 2, limit: 3 })
        );
        // Empty rows are skipped before the field count is checked.
        assert!(count("h\n,,,,,,\na\n").is_ok());
        assert_eq!(
            count("h\n\n\"abcdef\"\n"),
            Err(ImportError::FieldTooLong { line: 3, limit: 5 })
        );
        assert!(
            count("h\n  abcde  \n").is_ok(),
            "trimmed, and counted in characters"
        );
        assert!(count("h\néééé\n").is_ok());
        assert_eq!(
            ImportError::TooManyFields { line: 2, limit: 3 }.to_string(),
            "Line 2: this row has more than 3 columns, the most a row may have (ENDER_IMPORT_MAX_FIELDS)."
        );
        // The callback may stop the pass.
        let mut seen = 0;
        let shape = scan_table("h\na\nb\nc\n", b',', true, &ImportLimits::default(), |row| {
            seen += 1;
            assert_eq!(row.to_row().fields.len(), 1);
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!((seen, shape.rows), (2, 2));
    }

    #[test]
    fn sniffs_delimiters() {
        assert_eq!(sniff_delimiter("name,phone\nAna,+1555\nBo,+1666\n"), b',');
        assert_eq!(
            sniff_delimiter("name;phone;notes\nAna;+1555;a, b\nBo;+1666;c\n"),
            b';'
        );
        assert_eq!(sniff_delimiter("name\tphone\nAna, Jr\t+1555\nBo\t+1666\n"), b'\t');
        assert_eq!(sniff_delimiter("name|phone\nAna|+1555\n"), b'|');
        // Decimal commas do not fool it.
        assert_eq!(sniff_delimiter("name;amount\nA;1,5\nB;2,5\nC;3\n"), b';');
        // Delimiters inside quotes do not count.
        assert_eq!(
            sniff_delimiter("name;phone\n\"Silva, Ana\";+1555\n\"Bo, Bob\";+1666\n\"C\";+1\n"),
            b';'
        );
        assert_eq!(sniff_delimiter("phone\n+1555\n"), b',');
        assert_eq!(sniff_delimiter(""), b',');
    }

    #[test]
    fn parses_semicolons_and_tabs() {
        let t = table("Name;Phone\nAna;+15551234567\n");
        assert_eq!(t.headers, ["Name", "Phone"]);
        assert_eq!(
            t.rows,
            [Row {
                line: 2,
                fields: vec!["Ana".into(), "+15551234567".into()]
            }]
        );
        let t = table("Name\tPhone\n Ana \t +15551234567 \n");
        assert_eq!(t.rows[0].fields, ["Ana", "+15551234567"]);
    }

    #[test]
    fn quoted_fields_keep_delimiters_and_newlines_and_lines_stay_right() {
        let text = "name,phone,notes\r\n\"Silva, Ana\",+15551234567,\"line one\r\nline \"\"two\"\"\"\r\n\r\nBo,+15557654321,x\r\n";
        let t = parse_table(text, b',', true).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].line, 2);
        assert_eq!(
            t.rows[0].fields,
            ["Silva, Ana", "+15551234567", "line one\r\nline \"two\""]
        );
        assert_eq!(t.rows[1].line, 5);
        assert_eq!(t.rows[1].fields, ["Bo", "+15557654321", "x"]);
    }

    #[test]
    fn headers_are_filled_and_rows_can_be_ragged() {
        let t = parse_table("\n\nname,\nAna,+1,extra\n,,\nBo\n", b',', true).unwrap();
        assert_eq!(t.headers, ["name", "Column 2", "Column 3"]);
        assert_eq!(t.rows[0].line, 4);
        assert_eq!(
            t.rows[1],
            Row {
                line: 6,
                fields: vec!["Bo".into()]
            }
        );
        let t = parse_table("Ana,+1\nBo,+2\n", b',', false).unwrap();
        assert_eq!(t.headers, ["Column 1", "Column 2"]);
        assert_eq!(t.rows[0].line, 1);
        assert_eq!(t.rows[1].line, 2);
        // A BOM left in the text is ignored.
        let t = parse_table("\u{feff}name\nAna\n", b',', true).unwrap();
        assert_eq!(t.headers, ["name"]);
    }

    #[test]
    fn guesses_mappings() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            guess_mapping(&h(&["Name", "Phone Number", "Notes", "Groups"])),
            ColumnMapping {
                name: Some(0),
                phone: Some(1),
                notes: Some(2),
                groups: Some(3)
            }
        );
        assert_eq!(
            guess_mapping(&h(&["phone_number", "FULL_NAME", "comment", "tags"])),
            ColumnMapping {
                name: Some(1),
                phone: Some(0),
                notes: Some(2),
                groups: Some(3)
            }
        );
        assert_eq!(
            guess_mapping(&h(&[
                "Last Name",
                "First Name",
                "Home Phone",
                "Mobile Phone",
                "Tel"
            ])),
            ColumnMapping {
                name: Some(1),
                phone: Some(3),
                notes: None,
                groups: None
            }
        );
        assert_eq!(
            guess_mapping(&h(&["Nombre", "Teléfono", "Notas", "Grupos"])),
            ColumnMapping {
                name: Some(0),
                phone: Some(1),
                notes: Some(2),
                groups: Some(3)
            }
        );
        assert_eq!(
            guess_mapping(&h(&["Vorname", "Nachname", "Handy", "Bemerkung"])),
            ColumnMapping {
                name: Some(0),
                phone: Some(2),
                notes: Some(3),
                groups: None
            }
        );
        assert_eq!(
            guess_mapping(&h(&[
                "Given Name",
                "Phone 1 - Type",
                "Phone 1 - Value",
                "Group Membership"
            ])),
            ColumnMapping {
                name: Some(0),
                phone: Some(2),
                notes: None,
                groups: Some(3)
            }
        );
        assert_eq!(guess_mapping(&h(&["a", "b"])), ColumnMapping::default());
        assert_eq!(guess_mapping(&[]), ColumnMapping::default());
    }

    #[test]
    fn normalises_phone_numbers() {
        assert_eq!(
            normalise_phone("+1 (555) 123-4567", None).unwrap(),
            "+15551234567"
        );
        assert_eq!(
            normalise_phone("tel:+44.20.7946.0958", None).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalise_phone("020 7946 0958", Some("44")).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalise_phone("20 7946 0958", Some("+44")).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalise_phone("00 44 20 7946 0958", None).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalise_phone("0033 1 23 45 67 89", Some("44")).unwrap(),
            "+33123456789"
        );
        assert_eq!(
            normalise_phone("(555) 123-4567", Some("1")).unwrap(),
            "+15551234567"
        );
        assert_eq!(
            normalise_phone("1-555-123-4567", Some("1")).unwrap(),
            "+15551234567"
        );
        assert_eq!(
            normalise_phone("011 44 20 7946 0958", Some("1")).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalise_phone("0151 1234567", Some("49")).unwrap(),
            "+491511234567"
        );
        assert_eq!(
            normalise_phone("abc", None).unwrap_err(),
            "Invalid phone number \"abc\": use E.164 like +15551234567 or set a default country code."
        );
        assert!(normalise_phone("5551234567", None).is_err());
        assert!(normalise_phone("555-abc", Some("1")).is_err());
        assert!(normalise_phone("+0123", None).is_err());
        assert!(normalise_phone("00", None).is_err());
        assert_eq!(
            normalise_phone("  ", None).unwrap_err(),
            "Phone number is missing."
        );
        assert!(
            normalise_phone("5551234567", Some("x1"))
                .unwrap_err()
                .contains("default country code")
        );
        // An empty default country is no default country.
        assert!(
            normalise_phone("5551234567", Some(""))
                .unwrap_err()
                .contains("set a default")
        );
    }

    #[test]
    fn rows_become_drafts_or_errors_with_lines() {
        let long_name = "n".repeat(201);
        let long_notes = "x".repeat(2001);
        let text = format!(
            "Name,Phone,Notes,Groups\n\
             Ana,+15551234567,hi,Friends; Work |Friends;;\n\
             ,020 7946 0958,,\n\
             Bo,,,\n\
             Cy,abc,,\n\
             \n\
             {long_name},+15550000001,,\n\
             \"Dee\",+15550000002,\"{long_notes}\",\n\
             {},+15550000003,,\n",
            "é".repeat(200)
        );
        let t = table(&text);
        let mapping = guess_mapping(&t.headers);
        let results = rows_to_drafts(&t, &mapping, Some("44"));
        assert_eq!(results.len(), 7);
        assert_eq!(
            results[0],
            Ok(ContactDraft {
                name: "Ana".into(),
                phone: "+15551234567".into(),
                notes: "hi".into(),
                groups: vec!["Friends".into(), "Work".into()],
            })
        );
        assert_eq!(
            results[1],
            Ok(ContactDraft {
                name: String::new(),
                phone: "+442079460958".into(),
                notes: String::new(),
                groups: vec![],
            })
        );
        let err = |i: usize| results[i].clone().unwrap_err();
        assert_eq!(err(2).line, 4);
        assert_eq!(err(2).message, "Phone number is missing.");
        assert_eq!((err(3).line, err(3).value.as_str()), (5, "abc"));
        assert!(err(3).message.starts_with("Invalid phone number \"abc\""));
        assert_eq!(err(4).line, 7);
        assert_eq!(err(4).message, "Name is longer than 200 characters.");
        assert_eq!(err(5).line, 8);
        assert_eq!(err(5).message, "Notes are longer than 2000 characters.");
        assert!(results[6].is_ok(), "200 characters is fine");
    }

    #[test]
    fn missing_phone_mapping_fails_every_row() {
        let t = table("name\nAna\n");
        let r = rows_to_drafts(
            &t,
            &ColumnMapping {
                name: Some(0),
                ..Default::default()
            },
            None,
        );
        assert_eq!(r[0].clone().unwrap_err().message, "Phone number is missing.");
    }

    #[test]
    fn errors_csv_lists_failed_rows() {
        let csv = errors_csv(&[
            RowError {
                line: 3,
                value: "=cmd()".into(),
                message: "Invalid, \"bad\".".into(),
            },
            RowError {
                line: 10,
                value: "abc".into(),
                message: "Nope.".into(),
            },
        ]);
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(
            text,
            "\u{feff}line,value,error\r\n3,'=cmd(),\"Invalid, \"\"bad\"\".\"\r\n10,abc,Nope.\r\n"
        );
    }

    #[test]
    fn parses_100_000_rows() {
        let mut text = String::from("name,phone,notes,groups\n");
        for i in 0..100_000u32 {
            text.push_str(&format!("Person {i},+1555{i:07},\"note, {i}\",A;B\n"));
        }
        let (decoded, _) = decode(text.as_bytes()).unwrap();
        let t = parse_table(&decoded, sniff_delimiter(&decoded), true).unwrap();
        assert_eq!(t.rows.len(), 100_000);
        assert_eq!(t.rows[99_999].line, 100_001);
        let drafts = ok_drafts(rows_to_drafts(&t, &guess_mapping(&t.headers), None));
        assert_eq!(drafts.len(), 100_000);
        assert_eq!(drafts[12_345].phone, "+15550012345");
        assert_eq!(drafts[12_345].notes, "note, 12345");
        assert_eq!(drafts[12_345].groups, ["A", "B"]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn parse_table_never_panics(
            chars in prop::collection::vec(prop_oneof![
                3 => any::<char>(),
                3 => prop::sample::select(vec![',', ';', '\t', '|', '"', '\n', '\r', ' ', 'a', '+', '1']),
            ], 0..300),
            header in any::<bool>(),
        ) {
            let text: String = chars.into_iter().collect();
            let delimiter = sniff_delimiter(&text);
            if let Ok(t) = parse_table(&text, delimiter, header) {
                let mut last = 0;
                for row in &t.rows {
                    prop_assert!(row.line > last);
                    last = row.line;
                    prop_assert!(row.fields.len() <= t.headers.len());
                }
                let _ = rows_to_drafts(&t, &guess_mapping(&t.headers), Some("44"));
            }
        }
    }
}
