//! Final result codes: `OK`, `ERROR`, and the numbered or worded `+CME ERROR` (3GPP TS
//! 27.007 §9.2) and `+CMS ERROR` (TS 27.005 §3.2.5, below 128 the RP causes of TS 24.011)
//! with a table of their meanings, so that a failure reads the same whatever `AT+CMEE`
//! mode the modem is in.

use std::fmt;

/// `+CME ERROR` codes and their TS 27.007 wording (what `AT+CMEE=2` prints).
const CME: &[(u16, &str)] = &[
    (0, "phone failure"),
    (1, "no connection to phone"),
    (2, "phone-adaptor link reserved"),
    (3, "operation not allowed"),
    (4, "operation not supported"),
    (5, "PH-SIM PIN required"),
    (6, "PH-FSIM PIN required"),
    (7, "PH-FSIM PUK required"),
    (10, "SIM not inserted"),
    (11, "SIM PIN required"),
    (12, "SIM PUK required"),
    (13, "SIM failure"),
    (14, "SIM busy"),
    (15, "SIM wrong"),
    (16, "incorrect password"),
    (17, "SIM PIN2 required"),
    (18, "SIM PUK2 required"),
    (20, "memory full"),
    (21, "invalid index"),
    (22, "not found"),
    (23, "memory failure"),
    (24, "text string too long"),
    (25, "invalid characters in text string"),
    (26, "dial string too long"),
    (27, "invalid characters in dial string"),
    (30, "no network service"),
    (31, "network timeout"),
    (32, "network not allowed - emergency calls only"),
    (40, "network personalization PIN required"),
    (100, "unknown"),
];

/// `+CMS ERROR` codes: RP causes (TS 24.011 §8.2.5.4), TP-FCS values (TS 23.040
/// §9.2.3.22) and the TS 27.005 codes from 300.
const CMS: &[(u16, &str)] = &[
    (1, "unassigned (unallocated) number"),
    (8, "operator determined barring"),
    (10, "call barred"),
    (21, "short message transfer rejected"),
    (27, "destination out of service"),
    (28, "unidentified subscriber"),
    (29, "facility rejected"),
    (30, "unknown subscriber"),
    (38, "network out of order"),
    (41, "temporary failure"),
    (42, "congestion"),
    (47, "resources unavailable, unspecified"),
    (50, "requested facility not subscribed"),
    (69, "requested facility not implemented"),
    (81, "invalid short message transfer reference value"),
    (95, "invalid message, unspecified"),
    (96, "invalid mandatory information"),
    (97, "message type non-existent or not implemented"),
    (98, "message not compatible with short message protocol state"),
    (99, "information element non-existent or not implemented"),
    (111, "protocol error, unspecified"),
    (127, "interworking, unspecified"),
    (128, "telematic interworking not supported"),
    (129, "short message type 0 not supported"),
    (130, "cannot replace short message"),
    (143, "unspecified TP-PID error"),
    (144, "data coding scheme (alphabet) not supported"),
    (145, "message class not supported"),
    (159, "unspecified TP-DCS error"),
    (160, "command cannot be actioned"),
    (161, "command unsupported"),
    (175, "unspecified TP-Command error"),
    (176, "TPDU not supported"),
    (192, "SC busy"),
    (193, "no SC subscription"),
    (194, "SC system failure"),
    (195, "invalid SME address"),
    (196, "destination SME barred"),
    (197, "SM rejected-duplicate SM"),
    (198, "TP-VPF not supported"),
    (199, "TP-VP not supported"),
    (208, "SIM SMS storage full"),
    (209, "no SMS storage capability in SIM"),
    (210, "error in MS"),
    (211, "memory capacity exceeded"),
    (212, "SIM application toolkit busy"),
    (213, "SIM data download error"),
    (255, "unspecified error cause"),
    (300, "ME failure"),
    (301, "SMS service of ME reserved"),
    (302, "operation not allowed"),
    (303, "operation not supported"),
    (304, "invalid PDU mode parameter"),
    (305, "invalid text mode parameter"),
    (310, "SIM not inserted"),
    (311, "SIM PIN required"),
    (312, "PH-SIM PIN required"),
    (313, "SIM failure"),
    (314, "SIM busy"),
    (315, "SIM wrong"),
    (316, "SIM PUK required"),
    (317, "SIM PIN2 required"),
    (318, "SIM PUK2 required"),
    (320, "memory failure"),
    (321, "invalid memory index"),
    (322, "memory full"),
    (330, "SMSC address unknown"),
    (331, "no network service"),
    (332, "network timeout"),
    (340, "no +CNMA acknowledgement expected"),
    (500, "unknown error"),
];

/// CMS codes that say the message itself can never go through (a bad number, a barred
/// recipient, a PDU the network refuses); everything else may work later or on another
/// modem.
const CMS_PERMANENT: &[u16] = &[
    1, 8, 10, 21, 27, 28, 29, 30, 50, 69, 81, 95, 96, 97, 98, 99, 111, 127, 128, 129, 144, 145, 176, 195,
    196, 197, 304,
];

/// One `+CME ERROR` or `+CMS ERROR`, numbered or worded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    /// The number, given by the modem or found from its wording; `None` for wording that is
    /// not in the table.
    pub code: Option<u16>,
    /// The table's wording for a known code, the modem's own otherwise.
    pub message: String,
    /// Whether the code is one the standards define.
    pub known: bool,
}

impl ErrorCode {
    fn parse(rest: &str, table: &[(u16, &str)]) -> Self {
        let rest = rest.trim();
        if let Ok(code) = rest.parse::<u16>() {
            return match table.iter().find(|(c, _)| *c == code) {
                Some((_, message)) => Self {
                    code: Some(code),
                    message: (*message).to_owned(),
                    known: true,
                },
                None => Self {
                    code: Some(code),
                    message: format!(
                        "unknown error code {code} (not in the standard, probably the manufacturer's own)"
                    ),
                    known: false,
                },
            };
        }
        let wanted = normalise(rest);
        match table.iter().find(|(_, m)| normalise(m) == wanted) {
            Some((code, message)) => Self {
                code: Some(*code),
                message: (*message).to_owned(),
                known: true,
            },
            None => Self {
                code: None,
                message: if rest.is_empty() {
                    "unspecified error".to_owned()
                } else {
                    rest.to_owned()
                },
                known: false,
            },
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.known) {
            (Some(code), true) => write!(f, "{code} ({})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Lowercase letters and digits only: modems differ in case, hyphens and commas.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A final result other than `OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalError {
    /// A bare `ERROR` (the modem gives no reason, or `AT+CMEE` is off).
    Error,
    Cme(ErrorCode),
    Cms(ErrorCode),
    /// `NO CARRIER`, `BUSY`, `COMMAND NOT SUPPORT` and the like.
    Other(String),
}

impl FinalError {
    pub fn cme_code(&self) -> Option<u16> {
        match self {
            Self::Cme(e) => e.code,
            _ => None,
        }
    }

    pub fn cms_code(&self) -> Option<u16> {
        match self {
            Self::Cms(e) => e.code,
            _ => None,
        }
    }

    fn is(&self, cme: u16, cms: u16) -> bool {
        self.cme_code() == Some(cme) || self.cms_code() == Some(cms)
    }

    /// The SIM refused a PIN or PUK.
    pub fn is_incorrect_password(&self) -> bool {
        self.cme_code() == Some(16)
    }

    pub fn is_puk_required(&self) -> bool {
        self.is(12, 316)
    }

    pub fn is_pin_required(&self) -> bool {
        self.is(11, 311)
    }

    pub fn is_sim_missing(&self) -> bool {
        self.is(10, 310)
    }

    /// The SIM or the modem is still starting up: worth asking again shortly. (515 is
    /// SIMCom's and Huawei's "please wait".)
    pub fn is_busy(&self) -> bool {
        self.is(14, 314) || self.cms_code() == Some(515)
    }

    /// Whether a `+CMS ERROR` to `AT+CMGS` means this message can never be sent.
    pub fn is_permanent_send_failure(&self) -> bool {
        self.cms_code().is_some_and(|c| CMS_PERMANENT.contains(&c))
    }
}

impl fmt::Display for FinalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Error => f.write_str("ERROR"),
            Self::Cme(e) => write!(f, "+CME ERROR {e}"),
            Self::Cms(e) => write!(f, "+CMS ERROR {e}"),
            Self::Other(line) => f.write_str(line),
        }
    }
}

/// The TS 27.007 wording of a `+CME ERROR` code.
pub(crate) fn cme_text(code: u16) -> Option<&'static str> {
    CME.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
}

/// The wording of a `+CMS ERROR` code.
pub(crate) fn cms_text(code: u16) -> Option<&'static str> {
    CMS.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
}

/// `Some` when `line` ends a command: `Ok` for `OK`, the error otherwise.
pub fn parse_final(line: &str) -> Option<Result<(), FinalError>> {
    let upper = line.to_ascii_uppercase();
    match upper.as_str() {
        "OK" => return Some(Ok(())),
        "ERROR" => return Some(Err(FinalError::Error)),
        "NO CARRIER"
        | "BUSY"
        | "NO ANSWER"
        | "NO DIALTONE"
        | "COMMAND NOT SUPPORT"
        | "TOO MANY PARAMETERS" => return Some(Err(FinalError::Other(line.to_owned()))),
        _ => {}
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CME ERROR:") {
        return Some(Err(FinalError::Cme(ErrorCode::parse(rest, CME))));
    }
    if let Some(rest) = strip_prefix_ignore_case(line, "+CMS ERROR:") {
        return Some(Err(FinalError::Cms(ErrorCode::parse(rest, CMS))));
    }
    None
}

pub(crate) fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &line[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> FinalError {
        match parse_final(line) {
            Some(Err(e)) => e,
            other => panic!("expected an error from {line:?}, got {other:?}"),
        }
    }

    #[test]
    fn numbered_and_worded_codes_read_the_same() {
        assert_eq!(err("+CME ERROR: 16"), err("+CME ERROR: incorrect password"));
        assert_eq!(err("+CME ERROR: Incorrect Password").cme_code(), Some(16));
        assert!(err("+CME ERROR: SIM PUK required").is_puk_required());
        assert!(err("+CMS ERROR: 316").is_puk_required());
        assert_eq!(
            err("+cms error: 500").to_string(),
            "+CMS ERROR 500 (unknown error)"
        );
    }

    #[test]
    fn unknown_codes_get_a_generic_message() {
        let e = err("+CMS ERROR: 777");
        assert_eq!(e.cms_code(), Some(777));
        assert!(e.to_string().contains("unknown error code 777"), "{e}");
        let e = err("+CME ERROR: modem on fire");
        assert_eq!(e.cme_code(), None);
        assert_eq!(e.to_string(), "+CME ERROR modem on fire");
        assert_eq!(err("+CMS ERROR:").to_string(), "+CMS ERROR unspecified error");
    }

    #[test]
    fn only_final_lines_are_final() {
        assert_eq!(parse_final("OK"), Some(Ok(())));
        assert_eq!(parse_final("ERROR"), Some(Err(FinalError::Error)));
        assert!(matches!(
            parse_final("NO CARRIER"),
            Some(Err(FinalError::Other(_)))
        ));
        assert_eq!(parse_final("+CSQ: 20,99"), None);
        assert_eq!(parse_final("OKAY"), None);
    }

    #[test]
    fn send_failures_are_sorted_into_permanent_and_not() {
        assert!(err("+CMS ERROR: 1").is_permanent_send_failure());
        assert!(!err("+CMS ERROR: 500").is_permanent_send_failure());
        assert!(!err("+CMS ERROR: 331").is_permanent_send_failure());
        assert!(!err("ERROR").is_permanent_send_failure());
        assert!(err("+CMS ERROR: 515").is_busy());
    }
}
