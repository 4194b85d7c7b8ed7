//! What a modem reports about itself, and the per-model choices of commands.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Signal quality from `AT+CSQ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// 0–31, `None` when the modem does not know (99).
    pub rssi: Option<u8>,
    /// `-113 + 2 × rssi` dBm.
    pub dbm: Option<i32>,
}

impl Signal {
    pub fn from_rssi(rssi: u8) -> Self {
        match rssi {
            0..=31 => Self {
                rssi: Some(rssi),
                dbm: Some(-113 + 2 * i32::from(rssi)),
            },
            _ => Self {
                rssi: None,
                dbm: None,
            },
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.dbm, self.rssi) {
            (Some(dbm), Some(rssi)) => write!(f, "{dbm} dBm (rssi {rssi})"),
            _ => f.write_str("unknown"),
        }
    }
}

/// Network registration from `AT+CREG?` / `AT+CEREG?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Home,
    Roaming,
    Searching,
    Denied,
    NotRegistered,
    Unknown,
}

impl Registration {
    /// The `<stat>` of TS 27.007 §7.2 (6 and 7 are "SMS only" on LTE: fine for us).
    pub fn from_stat(stat: u8) -> Self {
        match stat {
            0 => Self::NotRegistered,
            1 | 6 => Self::Home,
            2 => Self::Searching,
            3 => Self::Denied,
            5 | 7 => Self::Roaming,
            _ => Self::Unknown,
        }
    }

    pub fn is_registered(self) -> bool {
        matches!(self, Self::Home | Self::Roaming)
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Home => "registered (home network)",
            Self::Roaming => "registered (roaming)",
            Self::Searching => "searching for a network",
            Self::Denied => "registration denied",
            Self::NotRegistered => "not registered",
            Self::Unknown => "registration unknown",
        })
    }
}

/// Which dialect of AT a modem speaks, where models differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    Generic,
    Sim800,
    Sim7600,
    Huawei,
}

impl Profile {
    pub const NAMES: &[&str] = &["generic", "sim800", "sim7600", "huawei"];

    /// `AT+CNMI` settings to try in order: store SMS and say `+CMTI`, and pass status
    /// reports on as `+CDS` (or store them and say `+CDSI` where a model only does that).
    pub fn cnmi(self) -> &'static [&'static str] {
        match self {
            Self::Generic => &["AT+CNMI=2,1,0,1,0", "AT+CNMI=1,1,0,1,0", "AT+CNMI=2,1,0,2,0"],
            Self::Sim800 | Self::Sim7600 => &["AT+CNMI=2,1,0,1,0", "AT+CNMI=2,1,0,2,0"],
            Self::Huawei => &["AT+CNMI=2,1,0,2,0", "AT+CNMI=2,1,0,1,0"],
        }
    }

    /// Registration queries, best first: a 2G modem has no `+CEREG`, an LTE one may only
    /// register there.
    pub fn registration_queries(self) -> &'static [&'static str] {
        match self {
            Self::Generic | Self::Huawei => &["AT+CREG?", "AT+CEREG?"],
            Self::Sim800 => &["AT+CREG?"],
            Self::Sim7600 => &["AT+CEREG?", "AT+CREG?"],
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" => Ok(Self::Generic),
            "sim800" => Ok(Self::Sim800),
            "sim7600" => Ok(Self::Sim7600),
            "huawei" => Ok(Self::Huawei),
            other => Err(format!(
                "unknown profile {other:?}; expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Generic => "generic",
            Self::Sim800 => "sim800",
            Self::Sim7600 => "sim7600",
            Self::Huawei => "huawei",
        })
    }
}

/// How long to wait for the modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Ordinary commands.
    pub command: Duration,
    /// The `> ` prompt after `AT+CMGS`.
    pub prompt: Duration,
    /// The network's answer to a sent PDU.
    pub send: Duration,
    /// `AT+CMGL` on a full SIM.
    pub list: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(5),
            prompt: Duration::from_secs(5),
            send: Duration::from_secs(60),
            list: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// Every timeout the same: for tests against a simulated modem.
    pub fn all(timeout: Duration) -> Self {
        Self {
            command: timeout,
            prompt: timeout,
            send: timeout,
            list: timeout,
        }
    }
}

/// One SMS as the modem stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The storage it sits in (`"SM"` is the SIM).
    pub storage: String,
    pub index: u32,
    /// `<stat>`: 0 received unread, 1 received read, 2 stored unsent, 3 stored sent.
    pub stat: u8,
    /// The PDU in hex, SMSC part first.
    pub pdu: String,
}

/// Where a received SMS (or one part of it) is stored, to delete it once it is safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub storage: String,
    pub index: u32,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.storage, self.index)
    }
}
