//! The simulated modem's behaviour: bytes in, bytes out, no I/O, so that what it answers
//! is decided in one place under one lock.

use std::collections::{BTreeMap, VecDeque};

use crate::at::{cme_text, cms_text};
use crate::pdu::{self, Address, Pdu, Submit, Timestamp};

use super::{Fault, SentSms, SimOptions};

const CTRL_Z: u8 = 0x1a;
const ESC: u8 = 0x1b;
/// Slots on the simulated SIM.
pub(super) const CAPACITY: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Ready,
    Pin,
    Puk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    /// After `AT+CMGS=<len>`: collecting the PDU up to Ctrl-Z.
    Pdu {
        len: usize,
    },
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) options: SimOptions,
    pub(super) echo: bool,
    cmee: u8,
    pub(super) cmgf: u8,
    pub(super) cnmi: [u8; 5],
    pub(super) lock: Lock,
    wrong_pins: u32,
    pub(super) pin_attempts: u32,
    /// index → (stat, PDU hex).
    pub(super) storage: BTreeMap<u32, (u8, String)>,
    pub(super) sent: Vec<SentSms>,
    next_mr: u8,
    pub(super) next_reference: u8,
    faults: VecDeque<(String, Fault)>,
    /// A fault held for `AT+CMGS` until its PDU has come.
    pending_fault: Option<Fault>,
    pub(super) hung: bool,
    pub(super) commands: Vec<String>,
    mode: Mode,
    input: Vec<u8>,
}

impl State {
    pub(super) fn new(options: SimOptions) -> Self {
        let lock = if options.pin.is_some() {
            Lock::Pin
        } else {
            Lock::Ready
        };
        Self {
            echo: options.echo,
            next_mr: options.first_mr,
            options,
            cmee: 0,
            cmgf: 1,
            cnmi: [0; 5],
            lock,
            wrong_pins: 0,
            pin_attempts: 0,
            storage: BTreeMap::new(),
            sent: Vec::new(),
            next_reference: 0,
            faults: VecDeque::new(),
            pending_fault: None,
            hung: false,
            commands: Vec::new(),
            mode: Mode::Command,
            input: Vec::new(),
        }
    }

    pub(super) fn add_fault(&mut self, prefix: &str, fault: Fault) {
        self.faults.push_back((prefix.to_ascii_uppercase(), fault));
    }

    pub(super) fn resume(&mut self) {
        self.hung = false;
        self.mode = Mode::Command;
        self.input.clear();
    }

    /// Stores a PDU in the first free slot; `None` when the SIM is full.
    pub(super) fn store(&mut self, pdu: String) -> Option<u32> {
        let index = (1..=CAPACITY).find(|i| !self.storage.contains_key(i))?;
        self.storage.insert(index, (0, pdu));
        Some(index)
    }

    pub(super) fn recipient_of(&self, mr: u8) -> Option<Address> {
        self.sent
            .iter()
            .rev()
            .find(|s| s.mr == mr)
            .map(|s| s.submit.destination.clone())
    }

    /// What the modem answers to `bytes`.
    pub(super) fn input(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.hung {
                continue;
            }
            match (self.mode, b) {
                (Mode::Command, b'\r' | b'\n') => {
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.input))
                        .trim()
                        .to_owned();
                    if line.is_empty() {
                        continue;
                    }
                    if self.echo {
                        out.extend_from_slice(line.as_bytes());
                        out.push(b'\r');
                    }
                    self.command(&line, &mut out);
                }
                (Mode::Command, ESC) => self.input.clear(),
                (Mode::Pdu { len }, CTRL_Z) => {
                    let pdu = String::from_utf8_lossy(&std::mem::take(&mut self.input))
                        .trim()
                        .to_owned();
                    self.mode = Mode::Command;
                    if self.echo {
                        out.extend_from_slice(pdu.as_bytes());
                    }
                    self.submit(len, &pdu, &mut out);
                }
                (Mode::Pdu { .. }, ESC) => {
                    self.input.clear();
                    self.mode = Mode::Command;
                    self.pending_fault = None;
                }
                (Mode::Pdu { .. }, b'\r' | b'\n') => {}
                (_, b) => self.input.push(b),
            }
        }
        out
    }

    fn command(&mut self, line: &str, out: &mut Vec<u8>) {
        let upper = line.to_ascii_uppercase();
        self.commands.push(line.to_owned());
        tracing::debug!(sim.command = %line, "simulated modem got a command");
        if let Some(i) = self
            .faults
            .iter()
            .position(|(p, _)| upper.starts_with(p.as_str()))
        {
            let fault = self.faults.remove(i).map(|(_, f)| f);
            if upper.starts_with("AT+CMGS=") {
                self.pending_fault = fault;
            } else {
                match fault {
                    Some(Fault::Reply(reply)) => respond(out, &[&reply]),
                    Some(Fault::Hang) => self.hung = true,
                    None => {}
                }
                return;
            }
        }
        let reply = self.answer(line, &upper);
        match reply {
            Ok(lines) => {
                for l in lines {
                    respond(out, &[&l]);
                }
                respond(out, &["OK"]);
            }
            Err(Answer::Prompt) => out.extend_from_slice(b"\r\n> "),
            Err(Answer::Error) => respond(out, &["ERROR"]),
            Err(Answer::Cme(code)) => {
                let line = self.error_line("+CME ERROR", code, cme_text(code));
                respond(out, &[&line]);
            }
            Err(Answer::Cms(code)) => {
                let line = self.error_line("+CMS ERROR", code, cms_text(code));
                respond(out, &[&line]);
            }
        }
    }

    fn error_line(&self, kind: &str, code: u16, text: Option<&str>) -> String {
        match (self.cmee, text) {
            (0, _) => "ERROR".to_owned(),
            (2, Some(text)) => format!("{kind}: {text}"),
            _ => format!("{kind}: {code}"),
        }
    }

    fn answer(&mut self, line: &str, upper: &str) -> Result<Vec<String>, Answer> {
        let arg = |prefix: &str| line.get(prefix.len()..).unwrap_or_default().trim();
        match upper {
            "AT" | "AT+COPS=3,0" => return Ok(vec![]),
            "ATE0" => {
                self.echo = false;
                return Ok(vec![]);
            }
            "ATE1" => {
                self.echo = true;
                return Ok(vec![]);
            }
            "ATZ" => {
                // Back to the stored profile: echo on, text mode, no indications.
                self.echo = true;
                self.cmee = 0;
                self.cmgf = 1;
                self.cnmi = [0; 5];
                return Ok(vec![]);
            }
            "ATI" | "AT+CGMM" => return Ok(vec!["Ender SimModem".to_owned()]),
            "AT+CSQ" => return Ok(vec![format!("+CSQ: {},99", self.options.rssi)]),
            "AT+CREG?" => return Ok(vec![format!("+CREG: 0,{}", self.options.creg)]),
            "AT+CEREG?" => {
                return match self.options.cereg {
                    Some(stat) => Ok(vec![format!("+CEREG: 0,{stat}")]),
                    None => Err(Answer::Cme(4)),
                };
            }
            "AT+COPS?" => {
                return Ok(vec![match &self.options.operator {
                    Some(name) => format!("+COPS: 0,0,\"{name}\",7"),
                    None => "+COPS: 0".to_owned(),
                }]);
            }
            "AT+CPIN?" => {
                return Ok(vec![
                    match self.lock {
                        Lock::Ready => "+CPIN: READY",
                        Lock::Pin => "+CPIN: SIM PIN",
                        Lock::Puk => "+CPIN: SIM PUK",
                    }
                    .to_owned(),
                ]);
            }
            _ => {}
        }
        if upper.starts_with("AT+CMEE=") {
            self.cmee = arg("AT+CMEE=").parse().map_err(|_| Answer::Cme(3))?;
            return Ok(vec![]);
        }
        if upper.starts_with("AT+CPIN=") {
            return self.enter_pin(arg("AT+CPIN=").trim_matches('"'));
        }
        // Everything below needs the SIM.
        match self.lock {
            Lock::Ready => {}
            Lock::Pin => return Err(Answer::Cms(311)),
            Lock::Puk => return Err(Answer::Cms(316)),
        }
        if upper == "AT+CMGF?" {
            return Ok(vec![format!("+CMGF: {}", self.cmgf)]);
        }
        if upper.starts_with("AT+CMGF=") {
            self.cmgf = match arg("AT+CMGF=") {
                "0" => 0,
                "1" => 1,
                _ => return Err(Answer::Cms(302)),
            };
            return Ok(vec![]);
        }
        if upper == "AT+CPMS?" {
            let used = self.storage.len();
            return Ok(vec![format!(
                "+CPMS: \"SM\",{used},{CAPACITY},\"SM\",{used},{CAPACITY},\"SM\",{used},{CAPACITY}"
            )]);
        }
        if upper.starts_with("AT+CPMS=") {
            let known = arg("AT+CPMS=")
                .split(',')
                .all(|m| matches!(m.trim().trim_matches('"'), "SM" | "ME" | "MT" | "SR"));
            if !known {
                return Err(Answer::Cms(302));
            }
            let used = self.storage.len();
            return Ok(vec![format!(
                "+CPMS: {used},{CAPACITY},{used},{CAPACITY},{used},{CAPACITY}"
            )]);
        }
        if upper.starts_with("AT+CNMI=") {
            let values: Vec<u8> = arg("AT+CNMI=")
                .split(',')
                .map(|v| v.trim().parse().unwrap_or(0))
                .collect();
            for (slot, value) in self.cnmi.iter_mut().zip(values) {
                *slot = value;
            }
            return Ok(vec![]);
        }
        if upper.starts_with("AT+CMGS=") {
            if self.cmgf != 0 {
                return Err(Answer::Cms(302));
            }
            let len = arg("AT+CMGS=").parse().map_err(|_| Answer::Cms(304))?;
            self.mode = Mode::Pdu { len };
            return Err(Answer::Prompt);
        }
        if upper.starts_with("AT+CMGL=") {
            if self.cmgf != 0 || arg("AT+CMGL=") != "4" {
                return Err(Answer::Cms(302));
            }
            let mut lines = Vec::new();
            for (index, (stat, pdu)) in &mut self.storage {
                lines.push(format!("+CMGL: {index},{stat},,{}", tpdu_len(pdu)));
                lines.push(pdu.clone());
                if *stat == 0 {
                    *stat = 1;
                }
            }
            return Ok(lines);
        }
        if upper.starts_with("AT+CMGR=") {
            let index: u32 = arg("AT+CMGR=").parse().map_err(|_| Answer::Cms(321))?;
            return Ok(match self.storage.get_mut(&index) {
                Some((stat, pdu)) => {
                    let lines = vec![format!("+CMGR: {stat},,{}", tpdu_len(pdu)), pdu.clone()];
                    if *stat == 0 {
                        *stat = 1;
                    }
                    lines
                }
                None => vec![],
            });
        }
        if upper.starts_with("AT+CMGD=") {
            let index: u32 = arg("AT+CMGD=")
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .parse()
                .map_err(|_| Answer::Cms(321))?;
            if index == 0 || index > CAPACITY {
                return Err(Answer::Cms(321));
            }
            self.storage.remove(&index);
            return Ok(vec![]);
        }
        Err(Answer::Error)
    }

    fn enter_pin(&mut self, pin: &str) -> Result<Vec<String>, Answer> {
        self.pin_attempts += 1;
        match self.lock {
            Lock::Ready => Err(Answer::Cme(3)),
            Lock::Puk => Err(Answer::Cme(12)),
            Lock::Pin if self.options.pin.as_deref() == Some(pin) => {
                self.lock = Lock::Ready;
                self.wrong_pins = 0;
                Ok(vec![])
            }
            Lock::Pin => {
                self.wrong_pins += 1;
                if self.wrong_pins >= 3 {
                    self.lock = Lock::Puk;
                }
                Err(Answer::Cme(16))
            }
        }
    }

    fn submit(&mut self, len: usize, pdu: &str, out: &mut Vec<u8>) {
        let fault = self.pending_fault.take();
        let submit = match pdu::decode(pdu) {
            Ok(Pdu::Submit(submit)) if tpdu_len(pdu) == len => submit,
            _ => {
                let line = self.error_line("+CMS ERROR", 304, cms_text(304));
                respond(out, &[&line]);
                return;
            }
        };
        if let Some(Fault::Reply(reply)) = fault {
            respond(out, &[&reply]);
            return;
        }
        let mr = self.record(pdu, submit);
        if let Some(Fault::Hang) = fault {
            // Handed over, then silence: the message went out but nobody hears so.
            self.hung = true;
            return;
        }
        respond(out, &[&format!("+CMGS: {mr}"), "OK"]);
    }

    fn record(&mut self, pdu: &str, submit: Submit) -> u8 {
        let mr = self.next_mr;
        self.next_mr = self.next_mr.wrapping_add(1);
        self.sent.push(SentSms {
            mr,
            pdu: pdu.to_owned(),
            submit,
        });
        mr
    }
}

enum Answer {
    Prompt,
    Error,
    Cme(u16),
    Cms(u16),
}

fn respond(out: &mut Vec<u8>, lines: &[&str]) {
    for line in lines {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Octets after the SMSC part, as `+CMGL`, `+CMGR`, `+CDS` and `AT+CMGS` count them.
pub(super) fn tpdu_len(pdu: &str) -> usize {
    let octets = pdu.len() / 2;
    let smsc = pdu
        .get(..2)
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    octets.saturating_sub(1 + smsc)
}

/// The service centre time the simulated network stamps on everything.
pub(super) fn network_time() -> Timestamp {
    Timestamp {
        year: 2025,
        month: 6,
        day: 1,
        hour: 12,
        minute: 0,
        second: 0,
        offset_quarters: 8,
    }
}
