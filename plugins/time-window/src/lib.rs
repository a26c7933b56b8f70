//! Time-window policy: permits only within a period, on given weekdays and hours, judged by the
//! server's clock (never by a claim: security-lessons S15).
//!
//! Configuration (every member optional, at least one given):
//! ```json
//! { "not_before": 1767225600, "not_after": 1798761599,
//!   "weekdays": ["mon", "tue", "wed", "thu", "fri"], "hours": [9, 17],
//!   "utc_offset_minutes": 60, "scopes": ["view"] }
//! ```
//! - `not_before` / `not_after`: Unix seconds, inclusive.
//! - `weekdays`: days on which access is allowed, in local time.
//! - `hours`: `[start, end)` in local hours, 0-24; `[22, 6]` wraps past midnight.
//! - `utc_offset_minutes`: the local time zone's offset from UTC.
//! - `scopes`: the scopes granted inside the window; default every requested scope.

use serde::Deserialize;
use uma_policy_sdk::policy::{Decision, Policy, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    not_before: Option<i64>,
    not_after: Option<i64>,
    weekdays: Option<Vec<String>>,
    hours: Option<[u32; 2]>,
    #[serde(default)]
    utc_offset_minutes: i32,
    scopes: Option<Vec<String>>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

struct TimeWindow;

impl Policy for TimeWindow {
    type Config = Config;

    fn evaluate(request: &Request, config: &Config) -> Decision {
        let now = (request.context.now_ms / 1000) as i64;
        if config.not_before.is_some_and(|t| now < t) {
            return Decision::Deny("access has not started yet".into());
        }
        if config.not_after.is_some_and(|t| now > t) {
            return Decision::Deny("access has ended".into());
        }
        let local = now + i64::from(config.utc_offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3 from Monday).
        let weekday = DAYS[((days + 3).rem_euclid(7)) as usize];
        if let Some(allowed) = &config.weekdays
            && !allowed.iter().any(|d| d == weekday)
        {
            return Decision::Deny(format!("access is not allowed on {weekday}"));
        }
        if let Some([start, end]) = config.hours {
            let hour = (local.rem_euclid(86_400) / 3600) as u32;
            let inside = if start <= end {
                hour >= start && hour < end
            } else {
                hour >= start || hour < end
            };
            if !inside {
                return Decision::Deny(format!(
                    "access is allowed from {start}:00 to {end}:00 only"
                ));
            }
        }
        match &config.scopes {
            Some(scopes) => request.permit_where(|s| scopes.iter().any(|g| g == s)),
            None => request.permit_requested(),
        }
    }

    fn validate(config: &Config) -> Result<(), String> {
        if config.not_before.is_none()
            && config.not_after.is_none()
            && config.weekdays.is_none()
            && config.hours.is_none()
        {
            return Err("give at least one of not_before, not_after, weekdays, hours".into());
        }
        if let (Some(a), Some(b)) = (config.not_before, config.not_after)
            && a > b
        {
            return Err("not_before is after not_after".into());
        }
        if let Some(days) = &config.weekdays
            && let Some(bad) = days.iter().find(|d| !DAYS.contains(&d.as_str()))
        {
            return Err(format!("unknown weekday `{bad}`; use {}", DAYS.join(", ")));
        }
        if let Some([start, end]) = config.hours
            && (start > 24 || end > 24 || start == end)
        {
            return Err(
                "hours must be [start, end] with 0 <= start, end <= 24 and start != end".into(),
            );
        }
        if config.utc_offset_minutes.abs() > 14 * 60 {
            return Err("utc_offset_minutes must be within +-840".into());
        }
        Ok(())
    }
}

uma_policy_sdk::export_policy!(TimeWindow, without_panic_messages);
