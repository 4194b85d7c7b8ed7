//! A simulated modem on a pseudo-terminal, for tests: the agent opens [`SimModem::path`]
//! like any serial port, and the test steers the modem from the other side.
//!
//! It speaks enough AT for the agent: the init commands, `AT+CPIN` with a PIN that counts
//! wrong tries (three lock the SIM), `AT+CSQ`/`AT+CREG?`/`AT+CEREG?`/`AT+COPS?`,
//! `AT+CMGS` in PDU mode (each PDU is decoded and recorded, and answered with an
//! incrementing reference), SIM storage with `AT+CMGL=4`/`AT+CMGR`/`AT+CMGD`, and the
//! indications `AT+CNMI` asks for. Like a real modem it starts with echo on, in text mode
//! and without indications, and `ATZ` takes it back there. It can be told to answer a
//! command with an error, to stop answering (and to come back), or to vanish.

mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

use crate::pdu::{self, Address, EncodedPdu, PduError, Submit};

use state::{Lock, State, network_time, tpdu_len};

/// How the simulated modem starts.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The SIM's PIN; `None` for a SIM without one.
    pub pin: Option<String>,
    /// `AT+CSQ` signal, 0–31 or 99.
    pub rssi: u8,
    /// `<stat>` for `AT+CREG?` (1 home, 5 roaming…).
    pub creg: u8,
    /// `<stat>` for `AT+CEREG?`; `None` for a modem without LTE (it answers an error).
    pub cereg: Option<u8>,
    pub operator: Option<String>,
    /// The message reference of the first SMS sent.
    pub first_mr: u8,
    /// Echo at start (real modems start with it on).
    pub echo: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            pin: None,
            rssi: 20,
            creg: 1,
            cereg: Some(1),
            operator: Some("Ender Mobile".to_owned()),
            first_mr: 1,
            echo: true,
        }
    }
}

/// An SMS the simulated modem was asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The reference it answered with.
    pub mr: u8,
    /// The PDU as the agent wrote it.
    pub pdu: String,
    pub submit: Submit,
}

impl SentSms {
    pub fn text(&self) -> Option<String> {
        self.submit.body().as_text().map(str::to_owned)
    }
}

/// What to do instead of answering a command normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this final result line (e.g. `+CMS ERROR: 500`). For `AT+CMGS` the
    /// prompt still comes and the answer follows the PDU, as a network refusal does.
    Reply(String),
    /// Stop answering from this command on, until [`SimModem::resume`]. For `AT+CMGS` the
    /// PDU is taken (and recorded) first: the modem dies mid-send.
    Hang,
}

/// See the module documentation.
pub struct SimModem {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    output: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for SimModem {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimModem {
    /// Opens a pseudo-terminal and starts answering on it. Must be called inside a Tokio
    /// runtime.
    pub fn start(options: SimOptions) -> io::Result<Self> {
        let (master, slave) = SerialStream::pair().map_err(io::Error::from)?;
        // The agent opens the terminal by its path; our own descriptor for it stays open
        // (without it the master side reads EIO until the agent comes) and is not
        // exclusive (`pair` does not set TIOCEXCL), so the agent's open succeeds.
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| io::Error::other("the pseudo-terminal has no name"))?;
        let state = Arc::new(Mutex::new(State::new(options)));
        let (output, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(master, slave, state.clone(), rx));
        Ok(Self {
            path,
            state,
            output,
            task,
        })
    }

    /// The terminal to open as the modem's port.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`SimModem::path`] as a string, for configurations.
    pub fn port(&self) -> String {
        self.path.display().to_string()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, state: &State, text: String) {
        if !state.hung {
            let _ = self.output.send(text.into_bytes());
        }
    }

    /// A new SMS from `from` (a number, or a name for an alphanumeric sender): encoded in as
    /// many parts as it needs, stored, and announced as `+CMTI` (or handed over as `+CMT`
    /// when `AT+CNMI` asked for that). Returns the storage indices.
    pub fn inject_sms(&self, from: &str, text: &str) -> Result<Vec<u32>, PduError> {
        let reference = {
            let mut state = self.state();
            state.next_reference = state.next_reference.wrapping_add(1);
            state.next_reference
        };
        let pdus = deliver_pdus(from, text, reference)?;
        Ok(pdus
            .into_iter()
            .filter_map(|pdu| self.inject_pdu(&pdu.hex))
            .collect())
    }

    /// Stores any PDU (a part out of order, garbage) and announces it like
    /// [`SimModem::inject_sms`]. `None` when it was handed over directly or the SIM is full.
    pub fn inject_pdu(&self, hex: &str) -> Option<u32> {
        let mut state = self.state();
        if state.cnmi[1] == 2 {
            let urc = format!("\r\n+CMT: ,{}\r\n{hex}\r\n", tpdu_len(hex));
            self.emit(&state, urc);
            return None;
        }
        let index = state.store(hex.to_owned())?;
        if state.cnmi[1] == 1 || state.cnmi[1] == 3 {
            self.emit(&state, format!("\r\n+CMTI: \"SM\",{index}\r\n"));
        }
        Some(index)
    }

    /// A status report for the SMS sent with reference `mr` (`status` as in TS 23.040
    /// TP-ST: 0 delivered, 0x20–0x3F still trying, 0x40 and up failed): `+CDS`, or stored
    /// and announced as `+CDSI`, as `AT+CNMI` asked. Returns the index when stored.
    pub fn emit_status_report(&self, mr: u8, status: u8) -> Result<Option<u32>, PduError> {
        let mut state = self.state();
        let recipient = match state.recipient_of(mr) {
            Some(address) => address,
            None => Address::parse("+15550000000")?,
        };
        let time = network_time();
        let pdu = pdu::encode_status_report(&recipient, mr, &time, &time, status)?;
        match state.cnmi[3] {
            1 => {
                let urc = format!("\r\n+CDS: {}\r\n{}\r\n", pdu.tpdu_len, pdu.hex);
                self.emit(&state, urc);
                Ok(None)
            }
            2 => {
                let index = state.store(pdu.hex);
                if let Some(index) = index {
                    self.emit(&state, format!("\r\n+CDSI: \"SM\",{index}\r\n"));
                }
                Ok(index)
            }
            _ => Ok(None),
        }
    }

    /// Writes `text` to the agent as it is (garbage, half a result code…).
    pub fn emit_raw(&self, text: &str) {
        let state = self.state();
        self.emit(&state, text.to_owned());
    }

    /// Answers the next command starting with `prefix` (case-insensitive) with `fault`.
    pub fn fault_next(&self, prefix: &str, fault: Fault) {
        self.state().add_fault(prefix, fault);
    }

    /// Answers the next command starting with `prefix` with the final result `reply`.
    pub fn fail_next(&self, prefix: &str, reply: &str) {
        self.fault_next(prefix, Fault::Reply(reply.to_owned()));
    }

    /// Stops answering anything, as a crashed modem firmware does.
    pub fn hang(&self) {
        self.state().hung = true;
    }

    /// Answers again (whatever came meanwhile is lost).
    pub fn resume(&self) {
        self.state().resume();
    }

    pub fn is_hung(&self) -> bool {
        self.state().hung
    }

    /// The port disappears, as when the modem is unplugged.
    pub fn unplug(&self) {
        self.task.abort();
    }

    /// The SMS sent so far, in order.
    pub fn sent(&self) -> Vec<SentSms> {
        self.state().sent.clone()
    }

    /// What the SIM holds: (index, PDU).
    pub fn stored(&self) -> Vec<(u32, String)> {
        self.state()
            .storage
            .iter()
            .map(|(i, (_, pdu))| (*i, pdu.clone()))
            .collect()
    }

    /// Every `AT+CPIN=` received, right or wrong.
    pub fn pin_attempts(&self) -> u32 {
        self.state().pin_attempts
    }

    /// Whether the SIM is locked and wants its PUK.
    pub fn puk_locked(&self) -> bool {
        self.state().lock == Lock::Puk
    }

    /// Every command received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.state().commands.clone()
    }

    /// The current `AT+CNMI` settings.
    pub fn cnmi(&self) -> [u8; 5] {
        self.state().cnmi
    }

    /// Whether the modem is in PDU mode (`AT+CMGF=0`).
    pub fn pdu_mode(&self) -> bool {
        self.state().cmgf == 0
    }
}

/// The SMS-DELIVER PDUs a network would hand a modem for `text` from `from`, to inject
/// them in any order with [`SimModem::inject_pdu`].
pub fn deliver_pdus(from: &str, text: &str, reference: u8) -> Result<Vec<EncodedPdu>, PduError> {
    let sender = Address::parse(from).or_else(|_| Address::alphanumeric(from))?;
    pdu::encode_deliver(&sender, text, &network_time(), reference)
}

async fn serve(
    mut master: SerialStream,
    _slave: SerialStream,
    state: Arc<Mutex<State>>,
    mut output: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut buf = [0u8; 1024];
    loop {
        let bytes = tokio::select! {
            read = master.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    state.input(&buf[..n])
                }
                Err(e) => {
                    tracing::debug!(error = %e, "simulated modem: reading failed; stopping");
                    break;
                }
            },
            bytes = output.recv() => match bytes {
                Some(bytes) => bytes,
                None => break,
            },
        };
        if bytes.is_empty() {
            continue;
        }
        if let Err(e) = master.write_all(&bytes).await {
            tracing::debug!(error = %e, "simulated modem: writing failed; stopping");
            break;
        }
    }
}
