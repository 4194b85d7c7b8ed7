//! The modem agent binary. Not wired yet: the PDU codec in the library comes first.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ender-modem-agent: not yet wired");
    ExitCode::from(2)
}
