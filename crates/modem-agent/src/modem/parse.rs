//! Reading the values in information responses (`+CSQ: 20,99`, `+CMGL: 1,0,,23`…).

/// The comma-separated fields of a response value, quotes removed. Quoted commas stay
/// inside their field (operator names have them).
pub(crate) fn fields(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field).trim().to_owned()),
            _ => field.push(c),
        }
    }
    out.push(field.trim().to_owned());
    out
}

fn number<T: std::str::FromStr>(fields: &[String], i: usize) -> Option<T> {
    fields.get(i)?.parse().ok()
}

/// `+CSQ: <rssi>,<ber>` → rssi.
pub(crate) fn csq(value: &str) -> Option<u8> {
    number(&fields(value), 0)
}

/// `+CREG: <n>,<stat>[,…]` (the answer to a query) → stat. The unsolicited form
/// `+CREG: <stat>` has one field.
pub(crate) fn creg(value: &str) -> Option<u8> {
    let f = fields(value);
    if f.len() == 1 {
        number(&f, 0)
    } else {
        number(&f, 1)
    }
}

/// `+COPS: <mode>[,<format>,<oper>[,<act>]]` → the operator, when registered.
pub(crate) fn cops(value: &str) -> Option<String> {
    fields(value).get(2).filter(|o| !o.is_empty()).cloned()
}

/// `+CPIN: <code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinState {
    Ready,
    Pin,
    Puk,
    Other(String),
}

pub(crate) fn cpin(value: &str) -> PinState {
    match value.trim().to_ascii_uppercase().as_str() {
        "READY" => PinState::Ready,
        "SIM PIN" => PinState::Pin,
        "SIM PUK" => PinState::Puk,
        _ => PinState::Other(value.trim().to_owned()),
    }
}

/// `+CMGL: <index>,<stat>,[<alpha>],<length>` → (index, stat).
pub(crate) fn cmgl(value: &str) -> Option<(u32, u8)> {
    let f = fields(value);
    Some((number(&f, 0)?, number(&f, 1)?))
}

/// `+CMGR: <stat>,[<alpha>],<length>` → stat.
pub(crate) fn cmgr(value: &str) -> Option<u8> {
    number(&fields(value), 0)
}

/// `+CMGS: <mr>[,<scts>]` → mr.
pub(crate) fn cmgs(value: &str) -> Option<u8> {
    number(&fields(value), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_from_their_fields() {
        assert_eq!(csq("20,99"), Some(20));
        assert_eq!(creg("0,5"), Some(5));
        assert_eq!(creg("2,1,\"00C3\",\"0000A1B2\",7"), Some(1));
        assert_eq!(creg("3"), Some(3));
        assert_eq!(cops("0,0,\"Ender, Mobile\",7").as_deref(), Some("Ender, Mobile"));
        assert_eq!(cops("0"), None);
        assert_eq!(cpin("SIM PIN"), PinState::Pin);
        assert_eq!(cpin("PH-SIM PIN"), PinState::Other("PH-SIM PIN".to_owned()));
        assert_eq!(cmgl("3,1,,24"), Some((3, 1)));
        assert_eq!(cmgr("0,,24"), Some(0));
        assert_eq!(cmgs("17"), Some(17));
        assert_eq!(cmgs("x"), None);
        assert_eq!(cmgs("256"), None);
    }
}
