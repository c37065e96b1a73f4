//! Settings of the rate limiter (`#[command(flatten)]` into `AuthConfig`).

use clap::{Args, ValueEnum};

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// How requests are limited, and where the buckets live.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limits")]
pub struct LimitsConfig {
    /// Rate limiting: `on`, or `off` for benchmarks (no limits and no rate-limit headers).
    #[arg(long = "rate-limit", env = "BREADBOX_RATE_LIMIT", value_enum, default_value = "on")]
    pub rate_limit: Switch,

    /// Redis shared by every instance (`redis://host:6379/0`). Empty: buckets in process.
    /// When Redis fails, the in-process buckets take over until it answers again.
    #[arg(long, env = "REDIS_URL", default_value = "", hide_env_values = true)]
    pub redis_url: String,

    /// Prefix of every rate-limit key in Redis.
    #[arg(long, env = "BREADBOX_REDIS_KEY_PREFIX", default_value = "breadbox:rl")]
    pub redis_key_prefix: String,

    /// Divides every rate-limit window (60 turns per-minute limits into per-second
    /// ones). For tests only; 1 in production.
    #[arg(long, env = "BREADBOX_RATE_LIMIT_TIME_SCALE", default_value_t = 1.0, value_parser = parse_scale)]
    pub rate_limit_time_scale: f64,

    /// Requests per minute (and burst) accepted from one client IP, whatever they are.
    #[arg(long, env = "BREADBOX_RATE_LIMIT_PER_IP", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_ip: u32,

    /// Failed authentications per minute accepted from one client IP (burst: twice
    /// this); past it, every request from that IP is refused until the bucket refills.
    #[arg(long, env = "BREADBOX_RATE_LIMIT_FAILED_AUTH", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_failed_auth: u32,

    /// Take the client IP from the last `X-Forwarded-For` entry instead of the peer
    /// address. Only behind a reverse proxy that appends it.
    #[arg(long, env = "BREADBOX_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_limit: Switch::On,
            redis_url: String::new(),
            redis_key_prefix: "breadbox:rl".to_owned(),
            rate_limit_time_scale: 1.0,
            rate_limit_per_ip: 1200,
            rate_limit_failed_auth: 30,
            trust_forwarded_for: false,
        }
    }
}

impl LimitsConfig {
    pub fn enabled(&self) -> bool {
        self.rate_limit == Switch::On
    }
}

fn parse_scale(raw: &str) -> Result<f64, String> {
    let scale: f64 = raw.parse().map_err(|_| format!("`{raw}` is not a number"))?;
    if scale.is_finite() && scale > 0.0 {
        Ok(scale)
    } else {
        Err("the time scale must be a positive number".to_owned())
    }
}
