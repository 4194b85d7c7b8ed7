//! How talking to a modem fails, sorted by what the caller should do: stop and tell a
//! person, reset the modem, or reopen its port.

use std::fmt;

use crate::at::{AtError, FinalError};
use crate::pdu::PduError;

/// A failure of the modem as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModemError {
    #[error("cannot open {port}: {reason}")]
    Open { port: String, reason: String },
    #[error(
        "the SIM rejected the PIN ({detail}); not trying again, since a SIM locks after 3 \
         wrong PINs: fix `pin` in the configuration"
    )]
    WrongPin { detail: String },
    #[error("the SIM asks for a PIN but none is configured: set `pin` for this modem")]
    PinRequired,
    #[error("the SIM is blocked and needs its PUK: unblock it in a phone, then configure the new PIN")]
    PukRequired,
    #[error("the SIM is not usable: {0}")]
    Sim(String),
    #[error(transparent)]
    At(#[from] AtError),
    #[error("unexpected answer to {command}: {detail}")]
    Protocol { command: String, detail: String },
}

impl ModemError {
    /// Needs a person: retrying cannot help, and for a PIN would lock the SIM.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::WrongPin { .. } | Self::PinRequired | Self::PukRequired | Self::Sim(_)
        )
    }

    /// The port is gone or unusable: close it and open it again later.
    pub fn is_disconnected(&self) -> bool {
        matches!(
            self,
            Self::Open { .. }
                | Self::At(AtError::Closed(_) | AtError::Write(_) | AtError::LostAfterPdu { .. })
        )
    }

    /// The modem stopped answering or lost track: reset it before going on.
    pub fn needs_reset(&self) -> bool {
        matches!(
            self,
            Self::At(AtError::Timeout { .. } | AtError::NoPrompt { .. }) | Self::Protocol { .. }
        )
    }

    pub(crate) fn protocol(command: &str, detail: impl Into<String>) -> Self {
        Self::Protocol {
            command: command.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Why an SMS could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    #[error("cannot encode the message: {0}")]
    Invalid(#[from] PduError),
    #[error("the modem or the network refused it: {0}")]
    Rejected(FinalError),
    #[error("the modem stopped answering after taking the PDU, so it may have been sent")]
    NoAnswerAfterPdu,
    #[error("the modem stopped answering before taking the PDU")]
    NoAnswer,
    #[error("{0}")]
    NoPrompt(String),
    #[error("the modem answered oddly: {0}")]
    Protocol(String),
    #[error("the modem is gone: {0}")]
    Disconnected(String),
    #[error("the modem went away after taking the PDU, so it may have been sent: {0}")]
    DisconnectedAfterPdu(String),
}

/// A failed send: what went wrong, at which part, and the references of the parts that
/// did go out (their status reports may still come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub failure: SendFailure,
    /// 1-based part that failed; 0 when nothing was tried.
    pub part: usize,
    pub total: usize,
    pub sent: Vec<u8>,
}

impl SendError {
    /// This message can never go through (bad number, refused PDU, barred recipient).
    pub fn is_permanent(&self) -> bool {
        match &self.failure {
            SendFailure::Invalid(_) => true,
            SendFailure::Rejected(e) => e.is_permanent_send_failure(),
            _ => false,
        }
    }

    /// The modem stopped answering: reset it before the next command.
    pub fn needs_reset(&self) -> bool {
        matches!(
            self.failure,
            SendFailure::NoAnswer
                | SendFailure::NoAnswerAfterPdu
                | SendFailure::NoPrompt(_)
                | SendFailure::Protocol(_)
        )
    }

    pub fn is_disconnected(&self) -> bool {
        matches!(
            self.failure,
            SendFailure::Disconnected(_) | SendFailure::DisconnectedAfterPdu(_)
        )
    }

    /// Nothing reached the modem: sending again cannot duplicate anything.
    pub fn nothing_sent(&self) -> bool {
        self.sent.is_empty()
            && !matches!(
                self.failure,
                SendFailure::NoAnswerAfterPdu
                    | SendFailure::Protocol(_)
                    | SendFailure::DisconnectedAfterPdu(_)
            )
    }

    /// The failing part may have gone out anyway: the message must not be sent again.
    pub fn uncertain(&self) -> bool {
        matches!(
            self.failure,
            SendFailure::NoAnswerAfterPdu | SendFailure::Protocol(_) | SendFailure::DisconnectedAfterPdu(_)
        )
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total > 1 {
            write!(f, "part {} of {}: ", self.part, self.total)?;
        }
        self.failure.fmt(f)
    }
}

impl std::error::Error for SendError {}
