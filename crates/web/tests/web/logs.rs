//! What Ender's code logs inside this test process, kept in memory so that a test can
//! check that no phone number, body or key reaches a log line.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Enough for every test's debug lines; past it the oldest text is not replaced, new
/// text is dropped (a test that checks the logs starts early, well under it).
const MAX_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged since the capture was installed, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut held = self.0.lock().unwrap();
        if held.len() + buf.len() <= MAX_BYTES {
            held.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once per process) a subscriber that keeps the debug lines of Ender's own
/// crates, and returns the capture. Every test's lines land in it, so a check looks
/// only for values that its own test uses.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let filter =
                EnvFilter::new("ender_core=debug,ender_web=debug,ender_worker=debug,ender_modem_agent=debug");
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(captured.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test installs a global subscriber");
            captured
        })
        .clone()
}

/// The values among `secrets` that appear in `text`, in full or as their digits without
/// the leading `+` and country code (the national number a log might print).
pub fn leaked<'a>(text: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets
        .iter()
        .copied()
        .filter(|s| {
            let digits = s.trim_start_matches('+');
            text.contains(s) || text.contains(digits) || (digits.len() > 7 && text.contains(&digits[1..]))
        })
        .collect()
}
