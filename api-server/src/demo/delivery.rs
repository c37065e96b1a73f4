//! What an MSP delivers to one client in the demo data: contracts with service lines,
//! the devices its RMM reports, health signals with 90 days of history, touchpoints
//! (a QBR among them) and a reconciliation report.

use rand::rngs::StdRng;
use rand::Rng;

use breadbox_auth::db::now_ms;

use super::{date, Loaded, DAY_MS};
use crate::domain::accounts::Account;
use crate::domain::contracts::{self, NewContract};
use crate::domain::device_bulk::{self, BulkItem};
use crate::domain::devices::DeviceChanges;
use crate::domain::health::{self, SignalInput};
use crate::domain::reconciliation::{self, CountInput, NewReport};
use crate::domain::service_lines::LineInput;
use crate::domain::touchpoints::{self, NewTouchpoint};
use crate::domain::{Crm, DomainError, Patch, Tenant};

/// Device models per kind: manufacturer, model, operating system, version.
const MODELS: &[(&str, &str, &str, &str, &str)] = &[
    ("WORKSTATION", "Dell", "OptiPlex 7010", "Windows 11 Pro", "23H2"),
    ("LAPTOP", "Lenovo", "ThinkPad T14 Gen 4", "Windows 11 Pro", "23H2"),
    ("LAPTOP", "Apple", "MacBook Air M2", "macOS", "14.4"),
    ("SERVER", "HPE", "ProLiant DL360 Gen10", "Windows Server 2022", "21H2"),
    ("NETWORK", "Fortinet", "FortiGate 60F", "FortiOS", "7.2.7"),
];
const SIGNALS: &[(&str, &str, f64)] =
    &[("psa", "ticket_sentiment", 2.0), ("rmm", "patch_compliance", 1.5), ("finance", "invoice_timeliness", 1.0)];

/// Loads one account's delivery records; `contact` is its primary contact.
pub async fn load_account(
    crm: &Crm,
    tenant: &Tenant,
    account: &Account,
    contact: Option<&str>,
    rng: &mut StdRng,
    loaded: &mut Loaded,
) -> Result<(), DomainError> {
    let seats = account.seats.unwrap_or(20);
    let now = now_ms();
    let active = matches!(account.lifecycle.as_str(), "ACTIVE" | "AT_RISK" | "ONBOARDING");
    let status = if account.lifecycle.as_str() == "CHURNED" { "EXPIRED" } else if active { "ACTIVE" } else { "DRAFT" };
    let line = |category: &str, description: &str, quantity: i64, unit_price: i64, period: &str| LineInput {
        category: Some(category.to_owned()),
        description: Some(description.to_owned()),
        quantity: Some(quantity),
        unit_price: Some(unit_price),
        billing_period: Some(period.to_owned()),
    };
    // Some contracts end within 60 days, so `contract.expiring_soon` has work to do.
    let ends_in_days = if loaded.accounts.is_multiple_of(5) { rng.gen_range(20..60) } else { rng.gen_range(120..700) };
    contracts::create(
        crm,
        tenant,
        NewContract {
            account_id: Some(account.id.clone()),
            name: Some(format!("{} managed services agreement", account.name)),
            status: Some(status.to_owned()),
            start_date: Some(date(now - rng.gen_range(200..900) * DAY_MS)),
            end_date: Some(date(now + ends_in_days * DAY_MS)),
            auto_renew: Some(rng.gen_bool(0.7)),
            currency: Some("USD".to_owned()),
            notes: None,
            service_lines: Some(vec![
                line("MANAGED_SERVICES", "Per-seat managed IT", seats, rng.gen_range(90..160) * 100, "MONTHLY"),
                line("SECURITY", "EDR and SOC monitoring", seats, rng.gen_range(8..15) * 100, "MONTHLY"),
                line("BACKUP", "Cloud backup, 1 TB", 1, rng.gen_range(60..120) * 1_000, "QUARTERLY"),
                line("PROJECT", "Onboarding project", 1, rng.gen_range(20..60) * 10_000, "MONTHLY"),
            ]),
        },
    )
    .await?;
    loaded.contracts += 1;

    let devices = (seats / 4).clamp(3, 40);
    let items = (0..devices)
        .map(|n| {
            let (kind, maker, model, os, version) = MODELS[(n as usize) % MODELS.len()];
            let seen = now - rng.gen_range(0..if n % 9 == 0 { 6 * DAY_MS } else { 3_600_000 });
            BulkItem::Parsed(DeviceChanges {
                account_id: Patch::Set(account.id.clone()),
                rmm_agent_id: Patch::Set(format!("rmm-{}-{n:03}", account.id)),
                hostname: Patch::Set(format!("{}-{}{n:02}", &account.id[4..8], kind[..2].to_lowercase())),
                kind: Patch::Set(kind.to_owned()),
                os: Patch::Set(os.to_owned()),
                os_version: Patch::Set(version.to_owned()),
                serial_number: Patch::Set(format!("SN{:08}", rng.gen_range(0..99_999_999))),
                manufacturer: Patch::Set(maker.to_owned()),
                model: Patch::Set(model.to_owned()),
                last_seen_at: Patch::Set(crate::time::rfc3339(seen)),
                end_of_life_date: Patch::Set(date(now + rng.gen_range(-60..1500) * DAY_MS)),
                ..Default::default()
            })
        })
        .collect();
    device_bulk::upsert(crm, tenant, items).await?;
    loaded.devices += devices as usize;

    // A trajectory over 90 days that ends near the lifecycle's health.
    let target: i64 = match account.lifecycle.as_str() {
        "AT_RISK" => rng.gen_range(25..45),
        "CHURNED" => rng.gen_range(10..30),
        _ => rng.gen_range(65..95),
    };
    let start: i64 = rng.gen_range(40..90);
    let history: Vec<i64> =
        (0..89).map(|day| start + (target - start) * day / 89 + rng.gen_range(-4..=4)).collect();
    health::backfill_history(crm, tenant, &account.id, &history).await?;
    for (source, name, weight) in SIGNALS {
        let value = (target + rng.gen_range(-10..=10)).clamp(0, 100);
        let input = SignalInput {
            source: Some((*source).to_owned()),
            name: Some((*name).to_owned()),
            value: Some(value as f64),
            weight: Some(*weight),
            observed_at: Some(Ok(now - rng.gen_range(0..3_600_000))),
        };
        health::push(crm, tenant, &account.id, input).await?;
        loaded.health_signals += 1;
    }

    for (n, kind) in ["CALL", "TICKET", "QBR"].into_iter().enumerate() {
        let qbr = kind == "QBR";
        let input = NewTouchpoint {
            account_id: Some(account.id.clone()),
            contact_id: contact.map(str::to_owned),
            kind: Some(kind.to_owned()),
            occurred_at: Some(Ok(now - rng.gen_range(1..80) * DAY_MS)),
            subject: Some(match kind {
                "CALL" => "Monthly check-in".to_owned(),
                "TICKET" => "Printer offline in reception".to_owned(),
                _ => "Quarterly business review".to_owned(),
            }),
            summary: Some("Logged by the demo data set.".to_owned()),
            source: Some("demo".to_owned()),
            external_id: Some(format!("{}-{n}", account.id)),
            agenda: qbr.then(|| "Service review, security posture, roadmap for next quarter".to_owned()),
            outcome: qbr.then(|| "Agreed to add MFA for all users; budget approved".to_owned()),
        };
        touchpoints::create(crm, tenant, input).await?;
        loaded.touchpoints += 1;
    }

    if active && loaded.accounts.is_multiple_of(3) {
        let reported = seats + rng.gen_range(-2..=4);
        let report = NewReport {
            account_id: Some(account.id.clone()),
            source: Some("rmm".to_owned()),
            reported_at: None,
            counts: Some(vec![CountInput { category: Some("MANAGED_SERVICES".to_owned()), quantity: Some(reported.max(0)) }]),
        };
        reconciliation::submit(crm, tenant, report, super::ACTOR).await?;
        loaded.reconciliations += 1;
    }
    Ok(())
}
