//! A cursor over PDU octets whose every read is bounds-checked, so decoding cannot panic.

use super::PduError;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn peek_u8(&self, field: &'static str) -> Result<u8, PduError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.truncated(field, 1))
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        let b = self.peek_u8(field)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated(field, n))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(field, n))?;
        self.pos = end;
        Ok(slice)
    }

    fn truncated(&self, field: &'static str, needed: usize) -> PduError {
        PduError::Truncated {
            field,
            offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }
}
