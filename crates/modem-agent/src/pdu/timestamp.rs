//! Service centre timestamps (TS 23.040 §9.2.3.11): seven octets of swapped decimal
//! semi-octets, the last giving the offset from UTC in quarters of an hour with a sign bit.

use std::fmt;

use super::{PduError, Reader};

/// A local time as the service centre stamped it, with its offset from UTC.
///
/// Only the digits are checked on decoding, not the calendar: a network's odd clock should
/// not cost a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Four digits; the PDU has two, read as 1990–2089 (SMS is younger than 1990).
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in quarters of an hour (−79..=79).
    pub offset_quarters: i8,
}

impl Timestamp {
    pub fn utc_offset_minutes(&self) -> i32 {
        i32::from(self.offset_quarters) * 15
    }

    pub(crate) fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PduError> {
        let octets = r.take(7, field)?;
        let digits = |i: usize| -> Result<u8, PduError> {
            let b = octets.get(i).copied().unwrap_or(0xFF);
            let (tens, units) = (b & 0x0F, b >> 4);
            if tens > 9 || units > 9 {
                return Err(PduError::invalid(
                    field,
                    format!("octet {b:02X} is not two decimal digits"),
                ));
            }
            Ok(tens * 10 + units)
        };
        let yy = digits(0)?;
        let tz = octets.get(6).copied().unwrap_or(0xFF);
        // Bit 3 of the octet (the high bit of the first semi-octet) is the sign.
        let (tens, units) = (tz & 0x07, tz >> 4);
        if units > 9 {
            return Err(PduError::invalid(
                field,
                format!("time zone octet {tz:02X} is not decimal"),
            ));
        }
        let quarters = i8::try_from(tens * 10 + units).unwrap_or(i8::MAX);
        Ok(Self {
            year: if yy >= 90 { 1900 } else { 2000 } + u16::from(yy),
            month: digits(1)?,
            day: digits(2)?,
            hour: digits(3)?,
            minute: digits(4)?,
            second: digits(5)?,
            offset_quarters: if tz & 0x08 != 0 { -quarters } else { quarters },
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        if !(1990..=2089).contains(&self.year) {
            return Err(PduError::invalid(
                "timestamp",
                format!("year {} is outside 1990–2089", self.year),
            ));
        }
        let fields = [self.month, self.day, self.hour, self.minute, self.second];
        if fields.iter().any(|&f| f > 99) || !(-79..=79).contains(&self.offset_quarters) {
            return Err(PduError::invalid(
                "timestamp",
                format!("{self} does not fit in semi-octets"),
            ));
        }
        let swapped = |v: u8| ((v % 10) << 4) | (v / 10);
        let yy = u8::try_from(self.year % 100).unwrap_or(0);
        out.push(swapped(yy));
        out.extend(fields.map(swapped));
        let sign = if self.offset_quarters < 0 { 0x08 } else { 0 };
        out.push(swapped(self.offset_quarters.unsigned_abs()) | sign);
        Ok(())
    }
}

/// RFC 3339, e.g. `1999-03-29T15:16:59+02:00`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.utc_offset_minutes();
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.unsigned_abs();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            offset / 60,
            offset % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(hex: &str) -> Result<Timestamp, PduError> {
        let bytes = hex::decode(hex).unwrap();
        Timestamp::read(&mut Reader::new(&bytes), "TP-SCTS")
    }

    fn encode(ts: &Timestamp) -> String {
        let mut out = Vec::new();
        ts.write(&mut out).unwrap();
        hex::encode_upper(out)
    }

    #[test]
    fn published_time_zones_decode_with_their_sign() {
        // python-gsmmodem's timestamp vectors: "80" is +8 quarters (GMT+2), "23" is
        // +32 quarters (GMT+8) and "2B" the same with the sign bit (GMT-8).
        for (hex, text) in [
            ("51117200000000", "2015-11-27T00:00:00+00:00"),
            ("51117200000080", "2015-11-27T00:00:00+02:00"),
            ("70402132522423", "2007-04-12T23:25:42+08:00"),
            ("7040213252242B", "2007-04-12T23:25:42-08:00"),
            ("99309251619580", "1999-03-29T15:16:59+02:00"),
        ] {
            let ts = decode(hex).unwrap();
            assert_eq!(ts.to_string(), text);
            assert_eq!(encode(&ts), hex);
        }
    }

    #[test]
    fn quarter_hours_are_kept() {
        // India, +05:30 = 22 quarters → semi-octets "22".
        let ts = decode("52010110000022").unwrap();
        assert_eq!(ts.utc_offset_minutes(), 330);
        assert_eq!(ts.to_string(), "2025-10-10T01:00:00+05:30");
    }

    #[test]
    fn non_decimal_digits_are_invalid() {
        let err = decode("9930925161A580").unwrap_err();
        assert!(matches!(err, PduError::Invalid { field: "TP-SCTS", .. }), "{err}");
        assert!(matches!(decode("993092"), Err(PduError::Truncated { .. })));
    }

    #[test]
    fn unencodable_times_are_refused() {
        let mut ts = decode("51117200000000").unwrap();
        ts.year = 1989;
        assert!(ts.write(&mut Vec::new()).is_err());
        ts.year = 2020;
        ts.offset_quarters = 80;
        assert!(ts.write(&mut Vec::new()).is_err());
    }
}
