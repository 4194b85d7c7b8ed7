//! Five-field cron expressions evaluated on the wall clock of an IANA time zone.
//!
//! # Syntax
//!
//! `minute hour day-of-month month day-of-week`, each field a comma-separated list of `*`,
//! `n`, `a-b`, `*/s`, `a-b/s` or `a/s` (from `a` to the end of the field). Months accept
//! `JAN`–`DEC` and days of the week `SUN`–`SAT` (full English names too, any case); 0 and 7
//! are both Sunday, and a weekday range ending on Sunday (`MON-SUN`, `1-0`) runs to the end
//! of the week. The macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
//! `@yearly` and `@annually` stand for their usual expansions.
//!
//! As in Vixie cron, a field *counts as a wildcard when its text starts with `*`* (so `*/15`
//! is a wildcard, `0-59/15` is not). When both day of month and day of week are restricted
//! (neither is a wildcard) a day matching **either** fires; otherwise both must match.
//!
//! # Daylight-saving time
//!
//! Fire times are wall-clock times in the schedule's zone, and we follow cronie's rules:
//!
//! * **Spring forward (gap).** A *fixed-time* schedule — neither the minute nor the hour
//!   field is a wildcard, e.g. `30 1 * * *` — whose wall time does not exist that day fires
//!   once, at the first valid minute after the gap (01:30 in Europe/London on the change day
//!   fires at 02:00 BST). Several times inside one gap collapse into that single run. For a
//!   schedule with a wildcard minute or hour (`*/15 * * * *`, `0 * * * *`, `* 1 * * *`) the
//!   missing minutes simply do not happen: nothing is moved, so there is never a burst.
//! * **Fall back (overlap).** A wall time that happens twice fires at its *first* occurrence
//!   only — unless the hour field is a wildcard. Schedules such as `0 * * * *` or
//!   `*/30 * * * *` describe an interval of real time, and users expect "every hour" to run
//!   every hour, so they fire at each real instant in the repeated hour (01:00 BST *and*
//!   01:00 GMT for hourly). A fixed hour (single value, list or range) never fires twice.
//!
//! Every fire time is a distinct instant, and [`CronExpr::upcoming`] is strictly increasing.
//!
//! # Search
//!
//! [`CronExpr::next_after`] walks local days from the day of `after`, skipping months that
//! cannot match. On a day without an offset change, local time is a constant shift of UTC,
//! so the first matching minute is found by jumping through the hour and minute bit sets.
//! Only the (rare) days containing a transition are examined minute by minute with the rules
//! above. The search gives up after about five years.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// How far ahead [`CronExpr::next_after`] looks before giving up (about five years).
const SEARCH_DAYS: i64 = 5 * 366 + 2;
/// Days examined after the first day that yields a fire time, in case an offset change near
/// midnight makes a later local day's run happen earlier in real time.
const LOOKAHEAD_DAYS: u8 = 2;
/// The longest spring-forward gap searched for its end (real ones are at most a day).
const MAX_GAP_MINUTES: u32 = 2 * 24 * 60;
const MINUTES_PER_DAY: u32 = 24 * 60;

const ALL_HOURS: u64 = (1 << 24) - 1;
const ALL_DAYS_OF_MONTH: u64 = ((1 << 32) - 1) & !1;
const ALL_MONTHS: u64 = ((1 << 13) - 1) & !1;
const ALL_DAYS_OF_WEEK: u64 = (1 << 7) - 1;
const WEEKDAYS: u64 = 0b011_1110;

const MONTH_NAMES: [&str; 12] = [
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
];
const DAY_NAMES: [&str; 7] = [
    "SUNDAY",
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
];

/// A parsed 5-field cron expression (minute hour day-of-month month day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    /// Bit `n` set when minute `n` (0–59) matches.
    minutes: u64,
    /// Bit `n` set when hour `n` (0–23) matches.
    hours: u64,
    /// Bit `n` set when day `n` (1–31) matches.
    days_of_month: u64,
    /// Bit `n` set when month `n` (1–12) matches.
    months: u64,
    /// Bit `n` set when weekday `n` (0 = Sunday … 6) matches.
    days_of_week: u64,
    dom_restricted: bool,
    dow_restricted: bool,
    minute_wild: bool,
    hour_wild: bool,
}

/// Why an expression was refused; `Display` is a sentence a user can act on that names the
/// field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// The field at fault, or `None` for the expression as a whole (field count, macros).
    pub field: Option<CronField>,
    pub message: String,
}

/// One of the five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    /// The field's name as used in error messages ("Day of month").
    pub fn label(self) -> &'static str {
        match self {
            CronField::Minute => "Minute",
            CronField::Hour => "Hour",
            CronField::DayOfMonth => "Day of month",
            CronField::Month => "Month",
            CronField::DayOfWeek => "Day of week",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An unknown IANA time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown time zone: {0}. Use an IANA name such as Europe/London.")]
pub struct TimezoneError(pub String);

/// An IANA time zone name ("Europe/London", "UTC"), surrounding whitespace ignored.
pub fn parse_timezone(name: &str) -> Result<Tz, TimezoneError> {
    let name = name.trim();
    name.parse::<Tz>().map_err(|_| TimezoneError(name.to_owned()))
}

/// Every IANA time zone name [`parse_timezone`] accepts, for pickers.
pub fn timezone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

/// A wall-clock time in `tz` as an instant: a time that does not exist that day
/// (spring-forward gap) becomes the first valid minute after the gap; one that exists twice
/// (fall-back) is the earlier one.
pub fn resolve_local(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, b) => a.to_utc().min(b.to_utc()),
        LocalResult::None => match after_gap(local, tz) {
            Some((_, instant)) => instant,
            // No valid minute within two days: not a real zone transition. Use the offset in
            // force around that time rather than fail.
            None => {
                let offset = tz.offset_from_utc_datetime(&local).fix();
                let utc = local
                    .checked_sub_signed(Duration::seconds(offset.local_minus_utc().into()))
                    .unwrap_or(local);
                Utc.from_utc_datetime(&utc)
            }
        },
    }
}

/// The first whole minute after `local` (which lies in a gap) that exists in `tz`: its wall
/// time and instant.
fn after_gap(local: NaiveDateTime, tz: Tz) -> Option<(NaiveDateTime, DateTime<Utc>)> {
    let mut probe = local.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..MAX_GAP_MINUTES {
        probe = probe.checked_add_signed(Duration::minutes(1))?;
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return Some((probe, t.to_utc()));
        }
    }
    None
}

impl CronExpr {
    /// Parses exactly five fields, or one macro. See the module documentation for the syntax.
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.starts_with('@')) {
            return Self::parse_macro(&fields);
        }
        let [minute, hour, dom, month, dow] = fields.as_slice() else {
            return Err(CronError {
                field: None,
                message: format!(
                    "Expected 5 fields (minute hour day month weekday), found {}.",
                    fields.len()
                ),
            });
        };
        Self::from_fields([minute, hour, dom, month, dow], fields.join(" "))
    }

    fn parse_macro(fields: &[&str]) -> Result<CronExpr, CronError> {
        let [name] = fields else {
            return Err(CronError {
                field: None,
                message: "A macro such as @daily must be the whole expression.".to_owned(),
            });
        };
        let expansion = match name.to_ascii_lowercase().as_str() {
            "@hourly" => ["0", "*", "*", "*", "*"],
            "@daily" | "@midnight" => ["0", "0", "*", "*", "*"],
            "@weekly" => ["0", "0", "*", "*", "0"],
            "@monthly" => ["0", "0", "1", "*", "*"],
            "@yearly" | "@annually" => ["0", "0", "1", "1", "*"],
            _ => {
                return Err(CronError {
                    field: None,
                    message: format!(
                        "Unknown macro \"{name}\". Use @hourly, @daily, @midnight, @weekly, \
                         @monthly, @yearly or @annually."
                    ),
                });
            }
        };
        Self::from_fields(expansion, (*name).to_owned())
    }

    fn from_fields(fields: [&str; 5], text: String) -> Result<CronExpr, CronError> {
        let [minute, hour, dom, month, dow] = fields;
        let minutes = parse_field(minute, &MINUTE)?;
        let hours = parse_field(hour, &HOUR)?;
        let days_of_month = parse_field(dom, &DAY_OF_MONTH)?;
        let months = parse_field(month, &MONTH)?;
        let mut days_of_week = parse_field(dow, &DAY_OF_WEEK)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let expr = CronExpr {
            text,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_restricted: !dom.starts_with('*'),
            dow_restricted: !dow.starts_with('*'),
            minute_wild: minute.starts_with('*'),
            hour_wild: hour.starts_with('*'),
        };
        // Only the day of month can rule out every day (30 February); when the day of week
        // may fire on its own (both restricted), some day always matches.
        let either = expr.dom_restricted && expr.dow_restricted;
        if !either && !(1..=12).any(|m| expr.months & (1 << m) != 0 && expr.has_day_in_month(m)) {
            return Err(DAY_OF_MONTH.error(
                "none of the chosen days occur in the chosen months, so the schedule would \
                 never run."
                    .to_owned(),
            ));
        }
        Ok(expr)
    }

    fn has_day_in_month(&self, month: u32) -> bool {
        let longest = match month {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (1..=longest).any(|d| self.days_of_month & (1 << d) != 0)
    }

    /// The normalised expression text (as typed, trimmed, single spaces).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `after`, evaluated on the wall clock of `tz` with
    /// the daylight-saving rules of the module documentation. `None` if there is none within
    /// about five years.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local_date = after.with_timezone(&tz).date_naive();
        let mut date = local_date.pred_opt().unwrap_or(local_date);
        let last = date
            .checked_add_signed(Duration::days(SEARCH_DAYS))
            .unwrap_or(NaiveDate::MAX);
        let mut best: Option<DateTime<Utc>> = None;
        let mut lookahead = LOOKAHEAD_DAYS;
        while date <= last {
            if self.months & (1 << date.month()) == 0 {
                if best.is_some() {
                    break;
                }
                match first_of_next_month(date) {
                    Some(next) => date = next,
                    None => break,
                }
                continue;
            }
            if self.day_matches(date)
                && let Some(found) = self.first_on_day(date, tz, after)
                && best.is_none_or(|b| found < b)
            {
                best = Some(found);
            }
            if best.is_some() {
                if lookahead == 0 {
                    break;
                }
                lookahead -= 1;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        best
    }

    /// The next `n` fire times strictly after `after`, strictly increasing (fewer if the
    /// schedule stops within the search horizon).
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(cursor, tz) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// A short English description when the expression is one of the simple shapes the form
    /// offers ("Every day at 09:00", "Weekdays at 08:30", "Every month on the 1st at 10:00",
    /// "Every Monday at 09:00", "Every hour at :15"), else `None`.
    pub fn describe(&self) -> Option<String> {
        let any_dom = !self.dom_restricted && self.days_of_month == ALL_DAYS_OF_MONTH;
        let any_dow = !self.dow_restricted && self.days_of_week == ALL_DAYS_OF_WEEK;
        if self.months != ALL_MONTHS {
            return None;
        }
        let minute = single(self.minutes)?;
        if self.hours == ALL_HOURS {
            return (any_dom && any_dow).then(|| format!("Every hour at :{minute:02}"));
        }
        let hour = single(self.hours)?;
        let time = format!("{hour:02}:{minute:02}");
        if any_dom && any_dow {
            Some(format!("Every day at {time}"))
        } else if any_dom && self.days_of_week == WEEKDAYS {
            Some(format!("Weekdays at {time}"))
        } else if any_dom && let Some(day) = single(self.days_of_week) {
            let name = title_case(DAY_NAMES[day as usize]);
            Some(format!("Every {name} at {time}"))
        } else if any_dow && let Some(day) = single(self.days_of_month) {
            Some(format!("Every month on the {} at {time}", ordinal(day)))
        } else {
            None
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Fixed-time schedules get runs in a spring-forward gap moved to the gap's end.
    fn is_fixed_time(&self) -> bool {
        !self.minute_wild && !self.hour_wild
    }

    /// The first matching minute of the day (`hour * 60 + minute`) at or after `from`.
    fn first_minute_from(&self, from: u32) -> Option<u32> {
        let mut hour = from / 60;
        let mut minute = from % 60;
        while hour < 24 {
            if self.hours & (1 << hour) != 0 {
                let remaining = self.minutes & !((1u64 << minute) - 1);
                if remaining != 0 {
                    return Some(hour * 60 + remaining.trailing_zeros());
                }
            }
            hour += 1;
            minute = 0;
        }
        None
    }

    /// The earliest fire time after `after` among the matching minutes of local day `date`
    /// (which matches the day fields).
    fn first_on_day(&self, date: NaiveDate, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = date.and_time(NaiveTime::MIN);
        let end = start.checked_add_signed(Duration::days(1))?;
        if let (LocalResult::Single(a), LocalResult::Single(b)) =
            (tz.from_local_datetime(&start), tz.from_local_datetime(&end))
        {
            let offset = a.offset().fix();
            let noon = a.naive_utc().checked_add_signed(Duration::hours(12))?;
            if b.offset().fix() == offset && tz.offset_from_utc_datetime(&noon).fix() == offset {
                // No transition today: local = UTC + offset throughout.
                let shift = Duration::seconds(offset.local_minus_utc().into());
                let threshold = after.naive_utc().checked_add_signed(shift)?;
                let from = if threshold < start {
                    0
                } else {
                    let elapsed = (threshold - start).num_minutes();
                    u32::try_from(elapsed).ok().filter(|m| *m < MINUTES_PER_DAY)? + 1
                };
                let minute = self.first_minute_from(from)?;
                let local = start.checked_add_signed(Duration::minutes(minute.into()))?;
                return Some(Utc.from_utc_datetime(&local.checked_sub_signed(shift)?));
            }
        }
        self.first_on_transition_day(start, tz, after)
    }

    /// [`Self::first_on_day`] for a day with an offset change: each matching minute in turn.
    fn first_on_transition_day(
        &self,
        start: NaiveDateTime,
        tz: Tz,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut best: Option<DateTime<Utc>> = None;
        // The end of the last gap met (wall time and instant), shared by its later minutes.
        let mut gap: Option<(NaiveDateTime, DateTime<Utc>)> = None;
        let mut from = 0;
        while let Some(minute) = self.first_minute_from(from) {
            from = minute + 1;
            let local = start.checked_add_signed(Duration::minutes(minute.into()))?;
            // `first` never decreases as `local` grows; `second` (the repeat in an overlap) is
            // always later than its own `first`.
            let (first, second) = match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => (Some(t.to_utc()), None),
                LocalResult::Ambiguous(a, b) => {
                    let (a, b) = (a.to_utc(), b.to_utc());
                    (Some(a.min(b)), self.hour_wild.then_some(a.max(b)))
                }
                LocalResult::None if self.is_fixed_time() => match gap {
                    Some((end, instant)) if local < end => (Some(instant), None),
                    _ => {
                        gap = after_gap(local, tz);
                        (gap.map(|(_, instant)| instant), None)
                    }
                },
                LocalResult::None => (None, None),
            };
            for candidate in [first, second].into_iter().flatten() {
                if candidate > after && best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
            if first.is_some_and(|f| f > after) {
                break;
            }
        }
        best
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CronExpr {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

/// The only set bit, if exactly one is set.
fn single(bits: u64) -> Option<u32> {
    (bits.count_ones() == 1).then(|| bits.trailing_zeros())
}

fn title_case(upper: &str) -> String {
    let mut chars = upper.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_string() + &chars.as_str().to_ascii_lowercase()
    })
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// How one field is read.
struct FieldSpec {
    field: CronField,
    min: u32,
    max: u32,
    /// The end of `*` (6 for the day of week, where 7 is only an alias).
    star_max: u32,
    /// Names for `min`, `min + 1`, … (matched in full or by their first three letters).
    names: &'static [&'static str],
    /// What a name would be, for the error message ("a month name").
    name_kind: &'static str,
}

const MINUTE: FieldSpec = FieldSpec {
    field: CronField::Minute,
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
    name_kind: "",
};
const HOUR: FieldSpec = FieldSpec {
    field: CronField::Hour,
    min: 0,
    max: 23,
    star_max: 23,
    names: &[],
    name_kind: "",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    star_max: 31,
    names: &[],
    name_kind: "",
};
const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    star_max: 12,
    names: &MONTH_NAMES,
    name_kind: "a month name",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 0,
    max: 7,
    star_max: 6,
    names: &DAY_NAMES,
    name_kind: "a day name",
};

impl FieldSpec {
    fn error(&self, detail: String) -> CronError {
        CronError {
            field: Some(self.field),
            message: format!("{}: {detail}", self.field.label()),
        }
    }

    /// One number or name of this field; `item` is the list item it came from.
    fn value(&self, token: &str, item: &str) -> Result<u32, CronError> {
        if token.is_empty() {
            return Err(self.error(format!("\"{item}\" is missing a number.")));
        }
        if token.bytes().all(|b| b.is_ascii_digit()) {
            return match token.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ => Err(self.error(format!("{token} is out of range ({}–{}).", self.min, self.max))),
            };
        }
        let upper = token.to_ascii_uppercase();
        let named = self
            .names
            .iter()
            .zip(self.min..)
            .find(|(name, _)| upper == **name || (upper.len() == 3 && name.starts_with(&upper)));
        match named {
            Some((_, v)) => Ok(v),
            None if self.names.is_empty() => Err(self.error(format!("\"{token}\" is not a number."))),
            None => Err(self.error(format!("\"{token}\" is not a number or {}.", self.name_kind))),
        }
    }

    fn step(&self, step: &str) -> Result<u32, CronError> {
        if step.is_empty() {
            return Err(self.error("a step needs a number after \"/\".".to_owned()));
        }
        if !step.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(format!("step \"{step}\" is not a number.")));
        }
        match step.parse::<u32>() {
            Ok(0) => Err(self.error("step must be at least 1.".to_owned())),
            Ok(n) => Ok(n),
            // More digits than fit: a step that large only ever selects the first value.
            Err(_) => Ok(u32::MAX),
        }
    }
}

/// The bit set of one field's values (for the day of week, bit 7 is Sunday again).
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(spec.error(format!("\"{text}\" has an empty item; remove the extra comma.")));
        }
        let (range, step) = match item.split_once('/') {
            Some((_, step)) if step.contains('/') => {
                return Err(spec.error(format!("\"{item}\" has more than one \"/\".")));
            }
            Some((range, step)) => (range, Some(spec.step(step)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.star_max)
        } else if let Some((a, b)) = range.split_once('-') {
            let low = spec.value(a, item)?;
            let mut high = spec.value(b, item)?;
            if spec.field == CronField::DayOfWeek && high == 0 && low > 0 {
                // MON-SUN: Sunday as the end of the week.
                high = 7;
            }
            if low > high {
                return Err(spec.error(format!(
                    "range {range} runs backwards; put the smaller value first."
                )));
            }
            (low, high)
        } else {
            let value = spec.value(range, item)?;
            (value, if step.is_some() { spec.star_max } else { value })
        };
        let step = step.unwrap_or(1);
        let mut value = low;
        while value <= high {
            bits |= 1 << value;
            match value.checked_add(step) {
                Some(next) => value = next,
                None => break,
            }
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid RFC 3339 instant")
            .to_utc()
    }

    fn tz(name: &str) -> Tz {
        parse_timezone(name).expect("known zone")
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("valid local time")
    }

    fn cron(expr: &str) -> CronExpr {
        CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
    }

    fn values(bits: u64) -> Vec<u32> {
        (0..64).filter(|b| bits & (1 << b) != 0).collect()
    }

    fn field_bits(expr: &CronExpr, field: CronField) -> u64 {
        match field {
            CronField::Minute => expr.minutes,
            CronField::Hour => expr.hours,
            CronField::DayOfMonth => expr.days_of_month,
            CronField::Month => expr.months,
            CronField::DayOfWeek => expr.days_of_week,
        }
    }

    #[test]
    fn valid_fields_select_the_expected_values() {
        use CronField::*;
        let cases: &[(&str, CronField, &[u32])] = &[
            ("5 * * * *", Minute, &[5]),
            ("*/15 * * * *", Minute, &[0, 15, 30, 45]),
            ("0-10/5 * * * *", Minute, &[0, 5, 10]),
            ("1,2,3 * * * *", Minute, &[1, 2, 3]),
            ("10/20 * * * *", Minute, &[10, 30, 50]),
            ("0,30,10-12 * * * *", Minute, &[0, 10, 11, 12, 30]),
            ("*/60 * * * *", Minute, &[0]),
            ("0 */6 * * *", Hour, &[0, 6, 12, 18]),
            ("0 9-17/4 * * *", Hour, &[9, 13, 17]),
            ("0 0 1,15,31 * *", DayOfMonth, &[1, 15, 31]),
            ("0 0 */10 * *", DayOfMonth, &[1, 11, 21, 31]),
            ("0 0 * jan,Mar,DEC *", Month, &[1, 3, 12]),
            ("0 0 * JAN-MAR *", Month, &[1, 2, 3]),
            ("0 0 * september *", Month, &[9]),
            ("0 0 * */3 *", Month, &[1, 4, 7, 10]),
            ("0 0 * * mon-fri", DayOfWeek, &[1, 2, 3, 4, 5]),
            ("0 0 * * 1-5", DayOfWeek, &[1, 2, 3, 4, 5]),
            ("0 0 * * 0", DayOfWeek, &[0]),
            ("0 0 * * 7", DayOfWeek, &[0]),
            ("0 0 * * 5-7", DayOfWeek, &[0, 5, 6]),
            ("0 0 * * SAT,sun", DayOfWeek, &[0, 6]),
            ("0 0 * * MON-SUN", DayOfWeek, &[0, 1, 2, 3, 4, 5, 6]),
            ("0 0 * * */2", DayOfWeek, &[0, 2, 4, 6]),
            ("0 0 * * Tuesday", DayOfWeek, &[2]),
            ("0 0 * * 1-7/2", DayOfWeek, &[0, 1, 3, 5]),
        ];
        for (expr, field, expected) in cases {
            let parsed = cron(expr);
            assert_eq!(values(field_bits(&parsed, *field)), *expected, "{expr}");
        }
    }

    #[test]
    fn the_text_is_trimmed_to_single_spaces_as_typed() {
        let cases = [
            ("  0   9 *\t* 1-5 ", "0 9 * * 1-5"),
            ("0 9 * * mon-FRI", "0 9 * * mon-FRI"),
            ("@daily", "@daily"),
            ("  @Weekly ", "@Weekly"),
        ];
        for (input, text) in cases {
            let parsed = cron(input);
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn invalid_expressions_are_refused_with_a_sentence_naming_the_field() {
        use CronField::*;
        let cases: &[(&str, Option<CronField>, &str)] = &[
            ("60 * * * *", Some(Minute), "Minute: 60 is out of range (0–59)."),
            ("0 25 * * *", Some(Hour), "Hour: 25 is out of range (0–23)."),
            (
                "0 0 0 * *",
                Some(DayOfMonth),
                "Day of month: 0 is out of range (1–31).",
            ),
            (
                "0 0 32 * *",
                Some(DayOfMonth),
                "Day of month: 32 is out of range (1–31).",
            ),
            ("0 0 * 13 *", Some(Month), "Month: 13 is out of range (1–12)."),
            (
                "0 0 * * 8",
                Some(DayOfWeek),
                "Day of week: 8 is out of range (0–7).",
            ),
            (
                "99999999999 * * * *",
                Some(Minute),
                "Minute: 99999999999 is out of range (0–59).",
            ),
            (
                "0 0 * * FUNDAY",
                Some(DayOfWeek),
                "Day of week: \"FUNDAY\" is not a number or a day name.",
            ),
            (
                "0 0 * FOO *",
                Some(Month),
                "Month: \"FOO\" is not a number or a month name.",
            ),
            ("x * * * *", Some(Minute), "Minute: \"x\" is not a number."),
            ("0 MON * * *", Some(Hour), "Hour: \"MON\" is not a number."),
            (
                "0 0 L * *",
                Some(DayOfMonth),
                "Day of month: \"L\" is not a number.",
            ),
            ("*/0 * * * *", Some(Minute), "Minute: step must be at least 1."),
            (
                "*/ * * * *",
                Some(Minute),
                "Minute: a step needs a number after \"/\".",
            ),
            ("*/x * * * *", Some(Minute), "Minute: step \"x\" is not a number."),
            (
                "0 5-2 * * *",
                Some(Hour),
                "Hour: range 5-2 runs backwards; put the smaller value first.",
            ),
            (
                "0 0 * DEC-JAN *",
                Some(Month),
                "Month: range DEC-JAN runs backwards; put the smaller value first.",
            ),
            (
                "1,,2 * * * *",
                Some(Minute),
                "Minute: \"1,,2\" has an empty item; remove the extra comma.",
            ),
            (
                "0 0 * * 1-",
                Some(DayOfWeek),
                "Day of week: \"1-\" is missing a number.",
            ),
            ("-5 * * * *", Some(Minute), "Minute: \"-5\" is missing a number."),
            (
                "1/2/3 * * * *",
                Some(Minute),
                "Minute: \"1/2/3\" has more than one \"/\".",
            ),
            (
                "0 0 30 2 *",
                Some(DayOfMonth),
                "Day of month: none of the chosen days occur in the chosen months, so the \
                 schedule would never run.",
            ),
            (
                "0 0 31 4,6 *",
                Some(DayOfMonth),
                "Day of month: none of the chosen days occur in the chosen months, so the \
                 schedule would never run.",
            ),
        ];
        for (expr, field, message) in cases {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert_eq!(err.field, *field, "{expr}");
            assert_eq!(err.to_string(), *message, "{expr}");
        }
    }

    #[test]
    fn anything_but_five_fields_or_one_macro_is_refused() {
        let cases = [
            ("", "Expected 5 fields (minute hour day month weekday), found 0."),
            (
                "   ",
                "Expected 5 fields (minute hour day month weekday), found 0.",
            ),
            (
                "* * * *",
                "Expected 5 fields (minute hour day month weekday), found 4.",
            ),
            (
                "* * * * * *",
                "Expected 5 fields (minute hour day month weekday), found 6.",
            ),
            (
                "@reboot",
                "Unknown macro \"@reboot\". Use @hourly, @daily, @midnight, @weekly, @monthly, \
                 @yearly or @annually.",
            ),
            ("@daily 5", "A macro such as @daily must be the whole expression."),
        ];
        for (expr, message) in cases {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert_eq!(err.field, None, "{expr:?}");
            assert_eq!(err.to_string(), message, "{expr:?}");
        }
    }

    #[test]
    fn macros_mean_their_five_field_expansions() {
        let cases = [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@DAILY", "0 0 * * *"),
        ];
        for (name, expansion) in cases {
            let (mut a, b) = (cron(name), cron(expansion));
            a.text = b.text.clone();
            assert_eq!(a, b, "{name}");
        }
    }

    #[test]
    fn seven_and_zero_are_both_sunday() {
        let after = utc("2026-01-01T00:00:00Z"); // a Thursday
        let sunday = vec![utc("2026-01-04T09:00:00Z"), utc("2026-01-11T09:00:00Z")];
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUNDAY"] {
            assert_eq!(cron(expr).upcoming(after, Tz::UTC, 2), sunday, "{expr}");
        }
    }

    #[test]
    fn a_day_fires_when_either_restricted_day_field_matches() {
        // 2026-01-01 is a Thursday: Fridays are the 2nd, 9th, 16th, 23rd, 30th.
        let after = utc("2026-01-01T00:00:00Z");
        let cases: &[(&str, &[&str])] = &[
            // Both restricted: the 13th OR a Friday.
            (
                "0 0 13 * 5",
                &["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16"],
            ),
            ("0 0 13 * fri", &["2026-01-02", "2026-01-09", "2026-01-13"]),
            // A wildcard day of week: only the day of month counts.
            ("0 0 13 * *", &["2026-01-13", "2026-02-13"]),
            // A wildcard-led day of month (`*/2`) is not "restricted": both must match.
            ("0 0 */2 * 5", &["2026-01-09", "2026-01-23", "2026-02-13"]),
        ];
        for (expr, days) in cases {
            let expected: Vec<_> = days.iter().map(|d| utc(&format!("{d}T00:00:00Z"))).collect();
            assert_eq!(
                cron(expr).upcoming(after, Tz::UTC, days.len()),
                expected,
                "{expr}"
            );
        }
    }

    /// Checks `upcoming(after, zone, expected.len())` for each case.
    fn assert_runs(cases: &[(&str, &str, &str, &[&str])]) {
        for (expr, zone, after, expected) in cases {
            let got = cron(expr).upcoming(utc(after), tz(zone), expected.len());
            let expected: Vec<_> = expected.iter().map(|s| utc(s)).collect();
            assert_eq!(got, expected, "{expr} in {zone} after {after}");
        }
    }

    #[test]
    fn next_runs_in_utc_are_strictly_after_the_given_instant() {
        assert_runs(&[
            (
                "*/15 * * * *",
                "UTC",
                "2026-01-01T00:07:00Z",
                &["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"],
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-01-01T00:14:59.5Z",
                &["2026-01-01T00:15:00Z"],
            ),
            (
                "0 * * * *",
                "UTC",
                "2026-01-01T10:00:00Z",
                &["2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"],
            ),
            (
                "* * * * *",
                "UTC",
                "2026-12-31T23:59:00Z",
                &["2027-01-01T00:00:00Z", "2027-01-01T00:01:00Z"],
            ),
            (
                "0 9 * * mon-fri",
                "UTC",
                "2026-01-02T10:00:00Z",
                &["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"],
            ),
            (
                "0 0 31 * *",
                "UTC",
                "2026-01-31T00:00:00Z",
                &["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"],
            ),
            (
                "0 0 29 2 *",
                "UTC",
                "2025-03-01T00:00:00Z",
                &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
            ),
            (
                "59 23 31 12 *",
                "UTC",
                "2026-12-31T23:59:00Z",
                &["2027-12-31T23:59:00Z"],
            ),
            (
                "@yearly",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            ),
        ]);
    }

    #[test]
    fn next_runs_follow_the_wall_clock_of_the_zone() {
        assert_runs(&[
            // New York: EST (-5) in winter, EDT (-4) in summer.
            (
                "0 9 * * *",
                "America/New_York",
                "2026-01-10T00:00:00Z",
                &["2026-01-10T14:00:00Z"],
            ),
            (
                "0 9 * * *",
                "America/New_York",
                "2026-07-10T00:00:00Z",
                &["2026-07-10T13:00:00Z"],
            ),
            // After 09:00 local but before 09:00 UTC: tomorrow.
            (
                "0 9 * * *",
                "Asia/Kolkata",
                "2026-01-10T04:00:00Z",
                &["2026-01-11T03:30:00Z"],
            ),
            (
                "30 0 * * *",
                "Asia/Kathmandu",
                "2026-01-10T00:00:00Z",
                &["2026-01-10T18:45:00Z"],
            ),
            // The local day, not the UTC day, decides the weekday: Monday 08:00 in Auckland
            // (+13) is Sunday 19:00 UTC.
            (
                "0 8 * * 1",
                "Pacific/Auckland",
                "2026-01-01T00:00:00Z",
                &["2026-01-04T19:00:00Z"],
            ),
        ]);
    }

    #[test]
    fn london_spring_forward_moves_fixed_times_and_drops_missing_minutes() {
        // 2026-03-29: 01:00 GMT jumps to 02:00 BST, so 01:00–01:59 do not exist.
        assert_runs(&[
            // Daily at 01:30 fires once at 02:00 BST on the change day.
            (
                "30 1 * * *",
                "Europe/London",
                "2026-03-27T12:00:00Z",
                &[
                    "2026-03-28T01:30:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-30T00:30:00Z",
                ],
            ),
            // Two fixed times in the gap collapse into one run.
            (
                "0,30 1 * * *",
                "Europe/London",
                "2026-03-29T00:00:00Z",
                &["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"],
            ),
            // A moved run and a real 02:00 run are the same instant: one run.
            (
                "0 1,2 * * *",
                "Europe/London",
                "2026-03-29T00:00:00Z",
                &["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"],
            ),
            // Hourly: 00:00 GMT then 02:00 BST, one real hour apart.
            (
                "0 * * * *",
                "Europe/London",
                "2026-03-28T23:30:00Z",
                &[
                    "2026-03-29T00:00:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-29T02:00:00Z",
                ],
            ),
            (
                "30 * * * *",
                "Europe/London",
                "2026-03-29T00:00:00Z",
                &["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"],
            ),
            // Every 15 minutes: no burst at 02:00 BST.
            (
                "*/15 * * * *",
                "Europe/London",
                "2026-03-29T00:30:00Z",
                &[
                    "2026-03-29T00:45:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-29T01:15:00Z",
                    "2026-03-29T01:30:00Z",
                ],
            ),
            // A wildcard minute in the missing hour is not moved: nothing runs that day.
            (
                "* 1 * * *",
                "Europe/London",
                "2026-03-28T23:00:00Z",
                &["2026-03-30T00:00:00Z", "2026-03-30T00:01:00Z"],
            ),
        ]);
    }

    #[test]
    fn london_fall_back_fires_fixed_hours_once_and_wildcard_hours_per_real_instant() {
        // 2026-10-25: 02:00 BST falls back to 01:00 GMT, so 01:00–01:59 happen twice.
        assert_runs(&[
            // Daily at 01:30: the first (BST) occurrence only.
            (
                "30 1 * * *",
                "Europe/London",
                "2026-10-23T12:00:00Z",
                &[
                    "2026-10-24T00:30:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-26T01:30:00Z",
                ],
            ),
            // Even when asked from inside the repeated hour.
            (
                "0 1 * * *",
                "Europe/London",
                "2026-10-25T00:30:00Z",
                &["2026-10-26T01:00:00Z"],
            ),
            (
                "0 1 * * *",
                "Europe/London",
                "2026-10-25T01:30:00Z",
                &["2026-10-26T01:00:00Z"],
            ),
            // A fixed hour with a wildcard minute: the first pass only.
            (
                "*/20 1 * * *",
                "Europe/London",
                "2026-10-25T00:00:00Z",
                &[
                    "2026-10-25T00:20:00Z",
                    "2026-10-25T00:40:00Z",
                    "2026-10-26T01:00:00Z",
                ],
            ),
            // Hourly: 01:00 BST and 01:00 GMT are both real hours.
            (
                "0 * * * *",
                "Europe/London",
                "2026-10-24T23:30:00Z",
                &[
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T02:00:00Z",
                ],
            ),
            (
                "0 * * * *",
                "Europe/London",
                "2026-10-25T00:30:00Z",
                &["2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"],
            ),
            (
                "*/30 * * * *",
                "Europe/London",
                "2026-10-24T23:45:00Z",
                &[
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T01:30:00Z",
                    "2026-10-25T02:00:00Z",
                ],
            ),
            (
                "*/15 * * * *",
                "Europe/London",
                "2026-10-25T00:30:00Z",
                &[
                    "2026-10-25T00:45:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T01:15:00Z",
                ],
            ),
        ]);
    }

    #[test]
    fn sao_paulo_historic_transitions_at_midnight_follow_the_same_rules() {
        assert_runs(&[
            // 2018-11-04: 00:00 -03 jumps to 01:00 -02; 00:30 moves to 01:00.
            (
                "30 0 * * *",
                "America/Sao_Paulo",
                "2018-11-02T12:00:00Z",
                &[
                    "2018-11-03T03:30:00Z",
                    "2018-11-04T03:00:00Z",
                    "2018-11-05T02:30:00Z",
                ],
            ),
            (
                "0 * * * *",
                "America/Sao_Paulo",
                "2018-11-04T01:30:00Z",
                &[
                    "2018-11-04T02:00:00Z",
                    "2018-11-04T03:00:00Z",
                    "2018-11-04T04:00:00Z",
                ],
            ),
            (
                "*/15 * * * *",
                "America/Sao_Paulo",
                "2018-11-04T02:30:00Z",
                &[
                    "2018-11-04T02:45:00Z",
                    "2018-11-04T03:00:00Z",
                    "2018-11-04T03:15:00Z",
                ],
            ),
            // 2019-02-17: 00:00 -02 falls back to 23:00 -03 on the 16th.
            (
                "30 0 * * *",
                "America/Sao_Paulo",
                "2019-02-15T12:00:00Z",
                &[
                    "2019-02-16T02:30:00Z",
                    "2019-02-17T03:30:00Z",
                    "2019-02-18T03:30:00Z",
                ],
            ),
            (
                "30 23 * * *",
                "America/Sao_Paulo",
                "2019-02-16T12:00:00Z",
                &["2019-02-17T01:30:00Z", "2019-02-18T02:30:00Z"],
            ),
            (
                "0 * * * *",
                "America/Sao_Paulo",
                "2019-02-16T23:30:00Z",
                &[
                    "2019-02-17T00:00:00Z",
                    "2019-02-17T01:00:00Z",
                    "2019-02-17T02:00:00Z",
                    "2019-02-17T03:00:00Z",
                ],
            ),
            (
                "*/15 * * * *",
                "America/Sao_Paulo",
                "2019-02-17T01:40:00Z",
                &[
                    "2019-02-17T01:45:00Z",
                    "2019-02-17T02:00:00Z",
                    "2019-02-17T02:15:00Z",
                ],
            ),
        ]);
    }

    #[test]
    fn a_skipped_calendar_day_moves_fixed_times_to_the_next_valid_minute() {
        // Samoa skipped 2011-12-30 entirely (-10 to +14 at midnight).
        assert_runs(&[(
            "0 12 * * *",
            "Pacific/Apia",
            "2011-12-29T00:00:00Z",
            &[
                "2011-12-29T22:00:00Z",
                "2011-12-30T10:00:00Z",
                "2011-12-30T22:00:00Z",
            ],
        )]);
    }

    #[test]
    fn resolve_local_moves_gaps_forward_and_picks_the_earlier_of_a_repeat() {
        let cases = [
            ("2026-03-29 01:30:00", "Europe/London", "2026-03-29T01:00:00Z"),
            ("2026-03-29 01:00:00", "Europe/London", "2026-03-29T01:00:00Z"),
            ("2026-03-29 01:30:45", "Europe/London", "2026-03-29T01:00:00Z"),
            ("2026-03-29 00:59:00", "Europe/London", "2026-03-29T00:59:00Z"),
            ("2026-03-29 02:00:00", "Europe/London", "2026-03-29T01:00:00Z"),
            ("2026-10-25 01:30:00", "Europe/London", "2026-10-25T00:30:00Z"),
            ("2026-10-25 01:00:00", "Europe/London", "2026-10-25T00:00:00Z"),
            ("2026-10-25 02:00:00", "Europe/London", "2026-10-25T02:00:00Z"),
            ("2018-11-04 00:00:00", "America/Sao_Paulo", "2018-11-04T03:00:00Z"),
            ("2018-11-04 00:30:00", "America/Sao_Paulo", "2018-11-04T03:00:00Z"),
            ("2019-02-16 23:30:00", "America/Sao_Paulo", "2019-02-17T01:30:00Z"),
            ("2011-12-30 12:00:00", "Pacific/Apia", "2011-12-30T10:00:00Z"),
            ("2026-06-01 12:34:56", "UTC", "2026-06-01T12:34:56Z"),
        ];
        for (wall, zone, expected) in cases {
            assert_eq!(
                resolve_local(local(wall), tz(zone)),
                utc(expected),
                "{wall} {zone}"
            );
        }
    }

    #[test]
    fn simple_shapes_are_described_in_english() {
        let cases = [
            ("0 9 * * *", Some("Every day at 09:00")),
            ("30 8 * * 1-5", Some("Weekdays at 08:30")),
            ("30 8 * * MON-FRI", Some("Weekdays at 08:30")),
            ("0 10 1 * *", Some("Every month on the 1st at 10:00")),
            ("0 10 2 * *", Some("Every month on the 2nd at 10:00")),
            ("0 10 3 * *", Some("Every month on the 3rd at 10:00")),
            ("0 10 13 * *", Some("Every month on the 13th at 10:00")),
            ("0 10 22 * *", Some("Every month on the 22nd at 10:00")),
            ("0 10 31 * *", Some("Every month on the 31st at 10:00")),
            ("0 9 * * 1", Some("Every Monday at 09:00")),
            ("0 9 * * 7", Some("Every Sunday at 09:00")),
            ("45 17 * * sat", Some("Every Saturday at 17:45")),
            ("15 * * * *", Some("Every hour at :15")),
            ("@daily", Some("Every day at 00:00")),
            ("@hourly", Some("Every hour at :00")),
            ("@weekly", Some("Every Sunday at 00:00")),
            ("@monthly", Some("Every month on the 1st at 00:00")),
            ("@yearly", None),
            ("*/15 * * * *", None),
            ("0 9,17 * * *", None),
            ("0 9 1 * 1", None),
            ("0 9 * 1 *", None),
            ("0 9 * * 1,3", None),
            ("15 * * * 1", None),
        ];
        for (expr, expected) in cases {
            assert_eq!(cron(expr).describe().as_deref(), expected, "{expr}");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(parse_timezone("Europe/London"), Ok(chrono_tz::Europe::London));
        assert_eq!(parse_timezone(" UTC "), Ok(Tz::UTC));
        for bad in ["", "BST", "Mars/Olympus", "europe/london"] {
            let err = parse_timezone(bad).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("Unknown time zone: {bad}. Use an IANA name such as Europe/London.")
            );
        }
    }

    fn minute_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            (1u32..=30).prop_map(|s| format!("*/{s}")),
            (0u32..60).prop_map(|v| v.to_string()),
            (0u32..60, 0u32..60).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0u32..60, 0u32..60).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    fn hour_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            (1u32..=12).prop_map(|s| format!("*/{s}")),
            (0u32..24).prop_map(|v| v.to_string()),
            (0u32..24, 0u32..24, 1u32..5).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
            (0u32..24, 0u32..24).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    fn day_fields() -> impl Strategy<Value = String> {
        let dom = prop_oneof![
            3 => Just("*".to_owned()),
            1 => (1u32..=31).prop_map(|v| v.to_string()),
            1 => (1u32..=10).prop_map(|s| format!("*/{s}")),
        ];
        let month = prop_oneof![
            3 => Just("*".to_owned()),
            1 => (1u32..=12).prop_map(|v| v.to_string()),
        ];
        let dow = prop_oneof![
            3 => Just("*".to_owned()),
            1 => (0u32..=7).prop_map(|v| v.to_string()),
            1 => Just("mon-fri".to_owned()),
        ];
        (dom, month, dow).prop_map(|(d, m, w)| format!("{d} {m} {w}"))
    }

    fn simple_expr() -> impl Strategy<Value = CronExpr> {
        (minute_field(), hour_field(), day_fields()).prop_filter_map("schedules that can run", |(m, h, d)| {
            CronExpr::parse(&format!("{m} {h} {d}")).ok()
        })
    }

    /// Like [`simple_expr`] but mostly every day and often every hour, so that runs land
    /// on the transition itself.
    fn everyday_expr() -> impl Strategy<Value = CronExpr> {
        let hour = prop_oneof![2 => Just("*".to_owned()), 3 => hour_field()];
        let days = prop_oneof![3 => Just("* * *".to_owned()), 1 => day_fields()];
        (minute_field(), hour, days).prop_filter_map("schedules that can run", |(m, h, d)| {
            CronExpr::parse(&format!("{m} {h} {d}")).ok()
        })
    }

    /// Schedules whose minute and hour fields are not wildcards.
    fn fixed_time_expr() -> impl Strategy<Value = CronExpr> {
        let minute = prop_oneof![
            (0u32..60).prop_map(|v| v.to_string()),
            (0u32..60, 0u32..60, 1u32..20).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
            (0u32..60, 0u32..60).prop_map(|(a, b)| format!("{a},{b}")),
        ];
        let hour = prop_oneof![
            (0u32..24).prop_map(|v| v.to_string()),
            (0u32..24, 0u32..24).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0u32..24, 0u32..24).prop_map(|(a, b)| format!("{a},{b}")),
        ];
        (minute, hour).prop_map(|(m, h)| cron(&format!("{m} {h} * * *")))
    }

    /// An instant between 1970 and 2100, at a whole minute half of the time.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_102_444_800, any::<bool>()).prop_map(|(s, whole)| {
            let s = if whole { s - s % 60 } else { s };
            DateTime::from_timestamp(s, 0).expect("in range")
        })
    }

    fn any_zone() -> impl Strategy<Value = Tz> {
        (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
    }

    /// An instant `shift_minutes` from the first offset change within about a year after
    /// `start` (or from `start` when the zone has none).
    fn near_transition(zone: Tz, start: i64, shift_minutes: i64) -> DateTime<Utc> {
        let at = |s: i64| DateTime::from_timestamp(s, 0).expect("in range");
        let offset = |s: i64| zone.offset_from_utc_datetime(&at(s).naive_utc()).fix();
        let day = 86_400;
        let base = offset(start);
        let Some(after_change) = (1..400).map(|d| start + d * day).find(|s| offset(*s) != base) else {
            return at(start);
        };
        let (mut low, mut high) = (after_change - day, after_change);
        while high - low > 60 {
            let mid = low + (high - low) / 2;
            if offset(mid) == base {
                low = mid
            } else {
                high = mid
            }
        }
        at(high - high.rem_euclid(60) + shift_minutes * 60)
    }

    /// The rules read literally: every matching wall-clock minute from two days before to
    /// three days after `after`, each becoming its instant(s) per the module documentation.
    fn reference_next(expr: &CronExpr, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let wall = after.with_timezone(&zone).naive_local();
        let first = wall.date().and_time(NaiveTime::MIN) - Duration::days(2);
        let mut runs = Vec::new();
        for m in 0..(6 * 24 * 60) {
            let local = first + Duration::minutes(m);
            if expr.months & (1 << local.month()) == 0
                || !expr.day_matches(local.date())
                || expr.hours & (1 << local.hour()) == 0
                || expr.minutes & (1 << local.minute()) == 0
            {
                continue;
            }
            match zone.from_local_datetime(&local) {
                LocalResult::Single(t) => runs.push(t.to_utc()),
                LocalResult::Ambiguous(a, b) => {
                    runs.push(a.to_utc().min(b.to_utc()));
                    if expr.hour_wild {
                        runs.push(a.to_utc().max(b.to_utc()));
                    }
                }
                LocalResult::None if expr.is_fixed_time() => runs.push(resolve_local(local, zone)),
                LocalResult::None => {}
            }
        }
        runs.into_iter()
            .filter(|t| *t > after && *t <= after + Duration::days(2))
            .min()
    }

    /// Zones with daylight-saving changes of different shapes: an hour at 01:00 UTC, at local
    /// midnight, half an hour, and southern-hemisphere ones.
    fn dst_zone() -> impl Strategy<Value = Tz> {
        prop::sample::select(vec![
            "Europe/London",
            "America/Sao_Paulo",
            "America/New_York",
            "America/Havana",
            "Australia/Lord_Howe",
            "Australia/Sydney",
            "Pacific/Chatham",
            "Asia/Beirut",
        ])
        .prop_map(tz)
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_arbitrary_text(text in ".{0,60}") {
            let _ = CronExpr::parse(&text);
        }

        #[test]
        fn parsing_never_panics_on_cron_like_text(text in "[0-9A-Za-z*/,@ -]{0,40}") {
            if let Ok(expr) = CronExpr::parse(&text) {
                prop_assert_eq!(CronExpr::parse(expr.as_str()), Ok(expr));
            }
        }

        #[test]
        fn runs_are_strictly_after_the_instant_and_strictly_increasing(
            expr in simple_expr(),
            after in instant(),
            zone in any_zone(),
        ) {
            let runs = expr.upcoming(after, zone, 6);
            prop_assert_eq!(runs.first().copied(), expr.next_after(after, zone));
            let mut previous = after;
            for run in runs {
                prop_assert!(run > previous, "{} then {} for {} in {}", previous, run, expr, zone);
                previous = run;
            }
        }

        #[test]
        fn fixed_time_schedules_fire_at_most_once_per_wall_clock_minute(
            expr in fixed_time_expr(),
            zone in prop_oneof![1 => any_zone(), 3 => dst_zone()],
            start in 631_152_000i64..2_524_608_000,
            shift in -26 * 60i64..2 * 60,
        ) {
            let after = near_transition(zone, start, shift);
            let walls: Vec<_> = expr
                .upcoming(after, zone, 12)
                .iter()
                .map(|t| t.with_timezone(&zone).naive_local())
                .collect();
            let mut distinct = walls.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), walls.len(), "{:?}", walls);
        }

        #[test]
        fn near_offset_changes_the_next_run_follows_the_documented_rules(
            expr in everyday_expr(),
            zone in prop_oneof![1 => any_zone(), 3 => dst_zone()],
            start in 631_152_000i64..2_524_608_000,
            shift in prop_oneof![1 => -36 * 60i64..36 * 60, 3 => -2 * 60i64..2 * 60],
        ) {
            let after = near_transition(zone, start, shift);
            let reference = reference_next(&expr, after, zone);
            let next = expr.next_after(after, zone);
            match reference {
                Some(expected) => prop_assert_eq!(next, Some(expected), "{} in {}", expr, zone),
                None => prop_assert!(
                    next.is_none_or(|n| n > after + Duration::days(2)),
                    "{} in {}: {:?}", expr, zone, next
                ),
            }
        }

        #[test]
        fn without_transitions_the_next_run_is_the_first_matching_minute(
            expr in simple_expr(),
            after in (631_152_000i64..4_102_444_800)
                .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
            zone in prop::sample::select(vec!["UTC", "Etc/GMT-5", "Etc/GMT+3", "Asia/Kolkata"]),
        ) {
            let zone = tz(zone);
            let window = 3 * 24 * 60;
            let start = after.timestamp() - after.timestamp().rem_euclid(60);
            let brute = (1..=window)
                .map(|m| DateTime::from_timestamp(start + m * 60, 0).expect("in range"))
                .find(|t| {
                    let wall = t.with_timezone(&zone).naive_local();
                    expr.months & (1 << wall.month()) != 0
                        && expr.day_matches(wall.date())
                        && expr.hours & (1 << wall.hour()) != 0
                        && expr.minutes & (1 << wall.minute()) != 0
                });
            let next = expr.next_after(after, zone);
            match brute {
                Some(expected) => prop_assert_eq!(next, Some(expected)),
                None => prop_assert!(next.is_none_or(|n| n.timestamp() > start + window * 60)),
            }
        }
    }
}
