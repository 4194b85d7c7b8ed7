//! Billing: plans and the limits they give, the prepaid balance (an append-only ledger in
//! integer cents), payments through providers, subscriptions and their renewals, promo
//! codes. With billing off (the default) nothing here is read on the way of a request:
//! every workspace has the Self-hosted plan, whose limits are the server's settings.

pub mod ledger;
pub mod payments;
pub mod plans;
pub mod promo;
pub mod stripe;
pub mod subscriptions;

use chrono::{DateTime, Months, Utc};

id_type!(PlanId);
id_type!(SubscriptionId);
id_type!(PaymentId);
id_type!(PromoId);

/// The largest amount one ledger entry, payment or promo code may move (ten million in
/// the currency's unit): a bound far above any real top-up that keeps every sum exact.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000;

/// `1234` is "12.34": an amount as a form field holds it, without the currency.
pub fn plain_amount(cents: i64) -> String {
    let abs = cents.unsigned_abs();
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `1234` in `usd` is "$12.34"; other currencies read "12.34 EUR".
pub fn format_cents(cents: i64, currency: &str) -> String {
    let plain = plain_amount(cents);
    let (sign, amount) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    match currency {
        "usd" => format!("{sign}${amount}"),
        "eur" => format!("{sign}€{amount}"),
        "gbp" => format!("{sign}£{amount}"),
        other => format!("{sign}{amount} {}", other.to_ascii_uppercase()),
    }
}

/// Parses an amount typed in the currency's unit ("12", "12.5", "12.34") into cents; more
/// than two decimals, signs other than a leading minus, or anything else is refused.
pub fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('$');
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || whole.len() > 12
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * if frac.len() == 1 { 10 } else { 1 }
    };
    let cents = whole.checked_mul(100)?.checked_add(frac)?;
    Some(if neg { -cents } else { cents })
}

/// How long a subscription period runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    Monthly,
    Yearly,
}

impl Cycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "monthly" | "" => Some(Self::Monthly),
            "yearly" | "annual" => Some(Self::Yearly),
            _ => None,
        }
    }

    pub fn months(self) -> u32 {
        match self {
            Self::Monthly => 1,
            Self::Yearly => 12,
        }
    }
}

/// `t` plus `months` calendar months (the 31st becomes the last day of a shorter month).
pub fn add_months(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    t.checked_add_months(Months::new(months)).unwrap_or(t)
}

/// The period of `months` months, counted from `anchor`, that holds `now`: each period
/// starts at `anchor + k·months` (so a period from the 31st runs to the last day of a
/// shorter month and back to the 31st). Before `anchor`, the first period.
pub fn period_containing(
    anchor: DateTime<Utc>,
    months: u32,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::Datelike;
    let months = months.max(1);
    if now < anchor {
        return (anchor, add_months(anchor, months));
    }
    let elapsed = (now.year() - anchor.year()) * 12 + now.month() as i32 - anchor.month() as i32;
    let mut k = u32::try_from(elapsed.max(0)).unwrap_or(0) / months;
    loop {
        let start = add_months(anchor, k * months);
        if start > now && k > 0 {
            k -= 1;
            continue;
        }
        let end = add_months(anchor, (k + 1) * months);
        if end <= now {
            k += 1;
            continue;
        }
        return (start, end);
    }
}
