//! Notifications for unattended runs: a JSON body POSTed to a webhook, and healthchecks-style
//! pings (`<url>/start` when a job starts, `<url>` on success, `<url>/fail` on failure).
//!
//! A notification that cannot be delivered is logged and never changes the job's result. URLs
//! are secrets (they carry tokens): logs and errors show them redacted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{debug, warn};

use crate::config::{redact_url, Config};

const TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;

/// Where notifications go, resolved from flags, environment and configuration.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    webhook: Option<String>,
    failures_only: bool,
    healthchecks: Option<String>,
    metrics_file: Option<std::path::PathBuf>,
    job_name: Option<String>,
}

/// The JSON body of a webhook call.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `backup`, `prune` or `verify`.
    pub job: String,
    /// The scheduled job's name (`--job-name`), else the same as `job`.
    pub name: String,
    /// `success` or `failure`.
    pub status: String,
    pub exit_code: i32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub databases: Vec<String>,
    /// What the job did, per backup or database (the command's JSON output).
    pub results: serde_json::Value,
    /// What the anomaly guard flagged.
    pub anomalies: Vec<String>,
    pub error: Option<String>,
    pub pgsafe_version: String,
}

impl Notifier {
    pub fn new(args: &crate::cli::NotifyArgs, config: &Config) -> Notifier {
        let n = &config.notifications;
        Notifier {
            webhook: args
                .webhook_url
                .clone()
                .or_else(|| n.webhook_url.clone())
                .filter(|u| !u.is_empty()),
            failures_only: n.webhook_on.as_deref() == Some("failure"),
            healthchecks: args
                .healthchecks_url
                .clone()
                .or_else(|| n.healthchecks_url.clone())
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_string()),
            // An empty value (PGSAFE_METRICS_FILE="") turns the configured file off.
            metrics_file: args
                .metrics_file
                .clone()
                .or_else(|| n.metrics_file.clone())
                .filter(|p| !p.as_os_str().is_empty()),
            job_name: args.job_name.clone().filter(|n| !n.is_empty()),
        }
    }

    /// The name notifications and metrics give this run.
    pub fn job_name(&self) -> Option<&str> {
        self.job_name.as_deref()
    }

    /// The Prometheus text file to rewrite after the job, if any.
    pub fn metrics_file(&self) -> Option<&std::path::Path> {
        self.metrics_file.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.healthchecks.is_none()
    }

    /// Pings `<healthchecks>/start`.
    pub async fn start(&self) {
        if let Some(hc) = &self.healthchecks {
            ping(&format!("{hc}/start"), String::new()).await;
        }
    }

    /// Reports the end of a job.
    pub async fn finish(&self, event: &Event) {
        let ok = event.status == "success";
        if let Some(hc) = &self.healthchecks {
            let url = if ok { hc.clone() } else { format!("{hc}/fail") };
            let body = event
                .error
                .clone()
                .unwrap_or_else(|| format!("{} {}", event.job, event.status));
            ping(&url, body).await;
        }
        if let Some(hook) = &self.webhook {
            if ok && self.failures_only {
                return;
            }
            post_json(hook, event).await;
        }
    }
}

fn client() -> Option<reqwest::Client> {
    match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("pgsafe/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            warn!("cannot build the HTTP client for notifications: {e}");
            None
        }
    }
}

async fn ping(url: &str, body: String) {
    let Some(client) = client() else { return };
    let body: String = body.chars().take(10_000).collect();
    send(url, || client.post(url).body(body.clone())).await;
}

async fn post_json(url: &str, event: &Event) {
    let Some(client) = client() else { return };
    send(url, || client.post(url).json(event)).await;
}

/// Sends with a few retries on network errors and 5xx answers.
async fn send(url: &str, request: impl Fn() -> reqwest::RequestBuilder) {
    let shown = redact_url(url);
    for attempt in 1..=ATTEMPTS {
        match request().send().await {
            Ok(r) if r.status().is_success() => {
                debug!("notified {shown} ({})", r.status());
                return;
            }
            Ok(r) if r.status().is_server_error() && attempt < ATTEMPTS => {
                debug!("{shown} answered {}; retrying", r.status())
            }
            Ok(r) => {
                warn!("notification to {shown} was refused: HTTP {}", r.status());
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                debug!(
                    "notification to {shown} failed ({}); retrying",
                    e.without_url()
                )
            }
            Err(e) => {
                warn!(
                    "could not notify {shown}: {}; the job's result is unchanged",
                    e.without_url()
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
}
