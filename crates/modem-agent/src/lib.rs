//! Ender's modem agent: talks to a GSM modem over AT commands and relays SMS to and from
//! Ender. So far only the pure part: the SMS PDU codec used in modem PDU mode.

pub mod pdu;
