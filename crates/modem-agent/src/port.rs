//! Serial ports: opened exclusively, so that nothing else (ModemManager, a second agent)
//! talks to the modem at the same time, and released on drop so that the agent itself
//! can open the port again after a reset.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use crate::modem::ModemError;

/// An open serial port.
pub struct Port {
    stream: SerialStream,
}

impl Port {
    /// Opens `path` at `baud`, 8N1, no flow control. Must be called inside a Tokio runtime.
    pub fn open(path: &str, baud: u32) -> Result<Self, ModemError> {
        let open_error = |reason: String| ModemError::Open {
            port: path.to_owned(),
            reason,
        };
        if !std::path::Path::new(path).exists() {
            return Err(open_error(
                "no such device (is the modem plugged in, and is this its port?)".to_owned(),
            ));
        }
        let stream = tokio_serial::new(path, baud)
            .open_native_async()
            .map_err(|e| match e.kind() {
                // The path exists, so "no device" means that the port is taken.
                tokio_serial::ErrorKind::NoDevice => open_error(format!(
                    "{e} (is another program, such as ModemManager or a second agent, using it?)"
                )),
                _ => open_error(e.to_string()),
            })?;
        Ok(Self { stream })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // TIOCEXCL outlives our descriptor when something else keeps the terminal open
        // (a simulated modem holds its side); clear it so the next open succeeds.
        let _ = self.stream.set_exclusive(false);
    }
}

impl AsyncRead for Port {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Port {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
