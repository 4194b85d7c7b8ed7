//! The command channel: one reader task splits what the modem says into responses for the
//! running command and unsolicited result codes for whoever listens; commands are written
//! one at a time and each waits for its final result under a timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::codes::{FinalError, parse_final};
use super::urc::{Item, Splitter, Urc, is_idle_urc};

const CTRL_Z: u8 = 0x1a;
const ESC: u8 = 0x1b;

/// What the reader hands to the running command.
#[derive(Debug)]
enum Line {
    Text(String),
    Prompt,
}

/// Where a command stood when it failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The command was written; no `> ` prompt or final result came.
    Command,
    /// The PDU was written after the prompt: the modem may have passed it on.
    Pdu,
}

/// Why a command did not end in `OK`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    #[error("{command}: no answer within {} ms", after.as_millis())]
    Timeout {
        command: String,
        after: Duration,
        stage: Stage,
    },
    #[error("{command}: {error}")]
    Failed {
        command: String,
        error: FinalError,
        stage: Stage,
    },
    #[error("{command}: the modem answered {line:?} where it should have shown the `> ` prompt")]
    NoPrompt { command: String, line: String },
    #[error("the port closed: {0}")]
    Closed(String),
    /// The port closed (or a write failed) after the PDU of `AT+CMGS` was written, or while
    /// it was: the modem may have passed it on before it went away.
    #[error("{command}: the port went away after the PDU was written: {reason}")]
    LostAfterPdu { command: String, reason: String },
    #[error("cannot write to the port: {0}")]
    Write(String),
}

/// The lines before a command's `OK`, echo removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub lines: Vec<String>,
}

impl Response {
    /// The text after `prefix` (e.g. `"+CSQ:"`) on the first line that starts with it.
    pub fn value(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| super::codes::strip_prefix_ignore_case(l, prefix))
            .map(str::trim)
    }
}

/// A line-oriented AT channel over any byte stream: a serial port, a pseudo-terminal or an
/// in-memory duplex.
pub struct AtChannel {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    lines: mpsc::UnboundedReceiver<Line>,
    in_flight: Arc<AtomicBool>,
    closed: Arc<Mutex<Option<String>>>,
    reader: JoinHandle<()>,
}

impl Drop for AtChannel {
    fn drop(&mut self) {
        // The reader holds half of the port: stopping it closes the port.
        self.reader.abort();
    }
}

impl AtChannel {
    /// Starts the reader on `stream`; unsolicited result codes arrive on the receiver.
    /// Must be called inside a Tokio runtime.
    pub fn new<S>(stream: S) -> (Self, mpsc::UnboundedReceiver<Urc>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::with_urc_sender(stream, tx), rx)
    }

    /// Like [`AtChannel::new`], sending unsolicited result codes to `urcs`.
    pub fn with_urc_sender<S>(stream: S, urcs: mpsc::UnboundedSender<Urc>) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let (line_tx, lines) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(Mutex::new(None));
        let reader = tokio::spawn(
            read_loop(read, Some(line_tx), urcs, in_flight.clone(), closed.clone())
                .instrument(tracing::Span::current()),
        );
        Self {
            writer: Box::new(write),
            lines,
            in_flight,
            closed,
            reader,
        }
    }

    /// Reads a port that only carries unsolicited result codes (a modem's second,
    /// "notification" port), sending them to `urcs`. Abort the handle to close the port.
    pub fn listen<R>(reader: R, urcs: mpsc::UnboundedSender<Urc>) -> JoinHandle<()>
    where
        R: AsyncRead + Send + 'static,
    {
        let closed = Arc::new(Mutex::new(None));
        tokio::spawn(
            read_loop(reader, None, urcs, Arc::new(AtomicBool::new(false)), closed)
                .instrument(tracing::Span::current()),
        )
    }

    /// Runs `command` (without the trailing `\r`) and waits up to `timeout` for its final
    /// result.
    pub async fn command(&mut self, command: &str, timeout: Duration) -> Result<Response, AtError> {
        self.begin(command)?;
        let exchange = async {
            self.write_command(command).await?;
            self.finish(command, None, Response::default()).await
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        self.in_flight.store(false, Ordering::SeqCst);
        result.unwrap_or_else(|_| {
            Err(AtError::Timeout {
                command: label(command),
                after: timeout,
                stage: Stage::Command,
            })
        })
    }

    /// Runs a command that takes a PDU (`AT+CMGS=<len>`): waits up to `prompt_timeout` for
    /// the `> ` prompt, writes `pdu` and Ctrl-Z, then waits up to `timeout` for the result.
    /// Without a prompt it sends ESC so that the modem stops waiting for a PDU.
    pub async fn command_with_pdu(
        &mut self,
        command: &str,
        pdu: &str,
        prompt_timeout: Duration,
        timeout: Duration,
    ) -> Result<Response, AtError> {
        self.begin(command)?;
        let prompt = async {
            self.write_command(command).await?;
            self.await_prompt(command).await
        };
        let result = match tokio::time::timeout(prompt_timeout, prompt).await {
            Ok(Ok(before)) => {
                let rest = async {
                    let mut bytes = Vec::with_capacity(pdu.len() + 1);
                    bytes.extend_from_slice(pdu.as_bytes());
                    bytes.push(CTRL_Z);
                    self.write_raw(&bytes).await?;
                    self.finish(command, Some(pdu), before).await
                };
                match tokio::time::timeout(timeout, rest).await {
                    Err(_) => Err(AtError::Timeout {
                        command: label(command),
                        after: timeout,
                        stage: Stage::Pdu,
                    }),
                    Ok(Err(AtError::Closed(reason) | AtError::Write(reason))) => Err(AtError::LostAfterPdu {
                        command: label(command),
                        reason,
                    }),
                    Ok(other) => other,
                }
            }
            Ok(Err(e)) => {
                if matches!(e, AtError::NoPrompt { .. }) {
                    self.cancel_pdu().await;
                }
                Err(e)
            }
            Err(_) => {
                self.cancel_pdu().await;
                Err(AtError::Timeout {
                    command: label(command),
                    after: prompt_timeout,
                    stage: Stage::Command,
                })
            }
        };
        self.in_flight.store(false, Ordering::SeqCst);
        result
    }

    /// Writes bytes as they are (ESC to leave a prompt, say).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| AtError::Write(e.to_string()))?;
        self.writer
            .flush()
            .await
            .map_err(|e| AtError::Write(e.to_string()))
    }

    /// Stops the reader and waits until it has let go of its half of the port; the port
    /// closes when the channel is dropped. Commands fail from then on.
    pub async fn close(&mut self) {
        self.reader.abort();
        let _ = (&mut self.reader).await;
    }

    /// Whether the reader has seen the port close.
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    fn closed_reason(&self) -> String {
        self.closed
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_else(|| "the reader stopped".to_owned())
    }

    /// Drops answers nobody waited for (a late reply to a command that timed out) and marks
    /// a command as running, so that the reader hands it the lines that follow.
    fn begin(&mut self, command: &str) -> Result<(), AtError> {
        while let Ok(stale) = self.lines.try_recv() {
            if let Line::Text(line) = stale {
                tracing::debug!(at.line = %label(&line), "dropping a late answer before {}", label(command));
            }
        }
        if self.is_closed() {
            return Err(AtError::Closed(self.closed_reason()));
        }
        self.in_flight.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn cancel_pdu(&mut self) {
        if let Err(e) = self.write_raw(&[ESC]).await {
            tracing::debug!(error = %e, "could not send ESC to leave the PDU prompt");
        }
    }

    async fn write_command(&mut self, command: &str) -> Result<(), AtError> {
        tracing::trace!(at.command = %label(command), "to modem");
        let mut bytes = Vec::with_capacity(command.len() + 1);
        bytes.extend_from_slice(command.as_bytes());
        bytes.push(b'\r');
        self.write_raw(&bytes).await
    }

    /// Reads up to the `> ` prompt; a final result instead of it is an error.
    async fn await_prompt(&mut self, command: &str) -> Result<Response, AtError> {
        let mut response = Response::default();
        loop {
            let Some(line) = self.lines.recv().await else {
                return Err(AtError::Closed(self.closed_reason()));
            };
            let Line::Text(line) = line else {
                return Ok(response);
            };
            if is_echo(&line, command, None) {
                continue;
            }
            match parse_final(&line) {
                Some(Err(error)) => {
                    return Err(AtError::Failed {
                        command: label(command),
                        error,
                        stage: Stage::Command,
                    });
                }
                Some(Ok(())) => {
                    return Err(AtError::NoPrompt {
                        command: label(command),
                        line,
                    });
                }
                None => response.lines.push(line),
            }
        }
    }

    async fn finish(
        &mut self,
        command: &str,
        pdu: Option<&str>,
        mut response: Response,
    ) -> Result<Response, AtError> {
        let stage = if pdu.is_some() { Stage::Pdu } else { Stage::Command };
        loop {
            let Some(line) = self.lines.recv().await else {
                return Err(AtError::Closed(self.closed_reason()));
            };
            let Line::Text(line) = line else {
                tracing::debug!("ignoring a `> ` prompt nobody asked for");
                continue;
            };
            if is_echo(&line, command, pdu) {
                continue;
            }
            match parse_final(&line) {
                Some(Ok(())) => return Ok(response),
                Some(Err(error)) => {
                    return Err(AtError::Failed {
                        command: label(command),
                        error,
                        stage,
                    });
                }
                None => response.lines.push(line),
            }
        }
    }
}

/// The command as it may appear in errors and logs: a PIN stays out of both.
fn label(command: &str) -> String {
    match super::codes::strip_prefix_ignore_case(command, "AT+CPIN=") {
        Some(_) => "AT+CPIN=<redacted>".to_owned(),
        None => command.to_owned(),
    }
}

/// A modem with echo on repeats the command (and the PDU) before answering.
fn is_echo(line: &str, command: &str, pdu: Option<&str>) -> bool {
    line.eq_ignore_ascii_case(command) || pdu.is_some_and(|p| line.eq_ignore_ascii_case(p))
}

async fn read_loop<R>(
    reader: R,
    lines: Option<mpsc::UnboundedSender<Line>>,
    urcs: mpsc::UnboundedSender<Urc>,
    in_flight: Arc<AtomicBool>,
    closed: Arc<Mutex<Option<String>>>,
) where
    R: AsyncRead,
{
    let mut reader = std::pin::pin!(reader);
    let mut splitter = Splitter::default();
    let mut buf = [0u8; 1024];
    let mut items = Vec::new();
    let reason = loop {
        match reader.read(&mut buf).await {
            Ok(0) => break "end of file".to_owned(),
            Ok(n) => {
                splitter.push(&buf[..n], &mut items);
                for item in items.drain(..) {
                    dispatch(item, lines.as_ref(), &urcs, &in_flight);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break e.to_string(),
        }
    };
    if let Ok(mut closed) = closed.lock() {
        *closed = Some(reason.clone());
    }
    let _ = urcs.send(Urc::PortClosed { reason });
}

fn dispatch(
    item: Item,
    lines: Option<&mpsc::UnboundedSender<Line>>,
    urcs: &mpsc::UnboundedSender<Urc>,
    in_flight: &AtomicBool,
) {
    let running = lines.filter(|_| in_flight.load(Ordering::SeqCst));
    match item {
        Item::Urc(urc) => {
            let _ = urcs.send(urc);
        }
        Item::Line(line) => match running {
            Some(lines) => {
                let _ = lines.send(Line::Text(line));
            }
            None if is_idle_urc(&line) => {
                let _ = urcs.send(Urc::Other(line));
            }
            None => tracing::debug!(at.line = %line.escape_debug(), "ignoring a line while no command runs"),
        },
        Item::Prompt => match running {
            Some(lines) => {
                let _ = lines.send(Line::Prompt);
            }
            None => tracing::debug!("ignoring a `> ` prompt while no command runs"),
        },
    }
}
