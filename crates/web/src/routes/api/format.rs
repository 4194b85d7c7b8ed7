//! Wire formats shared by the API handlers: Vendel's dates, pagination and message shapes.

use chrono::{DateTime, Utc};
use ender_core::sms::Message;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// RFC 3339 UTC with milliseconds (`2026-01-15T10:30:00.000Z`), or "" when unset.
pub fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub fn id<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `page` (default 1) and `per_page` (default 50, at most 200); bad values fall back.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: i64,
    pub per_page: i64,
}

impl Paging {
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Self {
        let page = page
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let per_page = per_page
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .map(|p| p.min(200))
            .unwrap_or(50);
        Self { page, per_page }
    }

    pub fn from_query(q: &std::collections::HashMap<String, String>) -> Self {
        Self::parse(
            q.get("page").map(String::as_str),
            q.get("per_page").map(String::as_str),
        )
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// `items` with the page fields beside them.
    pub fn wrap<T: Serialize>(&self, items: Vec<T>, total: i64) -> Value {
        let mut page = self.fields(total);
        page.insert("items".to_owned(), json!(items));
        Value::Object(page)
    }

    /// The page fields (`page`, `per_page`, `total_items`, `total_pages`) for a list of
    /// `total` items, for answers that carry their items under another name.
    pub fn fields(&self, total: i64) -> Map<String, Value> {
        let pages = if total == 0 {
            0
        } else {
            (total + self.per_page - 1) / self.per_page
        };
        let mut page = Map::new();
        page.insert("page".to_owned(), json!(self.page));
        page.insert("per_page".to_owned(), json!(self.per_page));
        page.insert("total_items".to_owned(), json!(total));
        page.insert("total_pages".to_owned(), json!(pages));
        page
    }
}

/// An optional query value: absent and empty both mean "no filter".
pub fn filter(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub fn message_type(m: &Message) -> &str {
    if m.direction == "incoming" {
        "incoming"
    } else {
        "outgoing"
    }
}

/// The full message, as `/api/sms/status` and `/api/sms/messages` show it.
pub fn message(m: &Message) -> Value {
    json!({
        "id": m.id.to_string(),
        "batch_id": id(m.batch_id),
        "recipient": m.recipient,
        "from_number": m.from_number,
        "body": m.body,
        "status": m.status,
        "message_type": message_type(m),
        "error_message": m.error_message,
        "device_id": id(m.device_id),
        "segments": m.segments,
        "encoding": m.encoding,
        "sent_at": ts(m.sent_at),
        "delivered_at": ts(m.delivered_at),
        "received_at": ts(m.received_at),
        "created": ts(Some(m.created_at)),
        "updated": ts(Some(m.updated_at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_falls_back_to_defaults_and_clamps() {
        let p = Paging::parse(Some("x"), Some("-3"));
        assert_eq!((p.page, p.per_page), (1, 50));
        let p = Paging::parse(Some("3"), Some("500"));
        assert_eq!((p.page, p.per_page, p.offset()), (3, 200, 400));
        assert_eq!(p.wrap(Vec::<i32>::new(), 401)["total_pages"], 3);
    }

    #[test]
    fn dates_have_milliseconds_and_z() {
        let t = DateTime::parse_from_rfc3339("2026-01-15T10:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(ts(Some(t)), "2026-01-15T10:30:00.000Z");
        assert_eq!(ts(None), "");
    }
}
