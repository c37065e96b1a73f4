//! The ideal-customer-profile score of a lead: 0–100, the sum of five factors, each
//! from the lead's own fields only (so the same lead always scores the same, and the
//! score changes exactly when a field it reads changes). The README documents the
//! same table; change both together.
//!
//! | factor | max | points |
//! |---|---|---|
//! | industry | 30 | regulated (HEALTHCARE, LEGAL, FINANCIAL_SERVICES, ACCOUNTING) 30; MANUFACTURING, CONSTRUCTION, PROFESSIONAL_SERVICES, REAL_ESTATE 20; EDUCATION, NONPROFIT, GOVERNMENT, RETAIL, HOSPITALITY 10; TECHNOLOGY, OTHER 5 |
//! | company size (employees) | 25 | 50–249: 25; 10–49 or 250–999: 15; 1–9 or 1000+: 5 |
//! | seat estimate (endpoints/seats) | 25 | 50–249: 25; 250+: 20; 10–49: 15; 1–9: 5 |
//! | source | 15 | REFERRAL 15, PARTNER 12, INBOUND 10, EVENT 8, OUTBOUND 5, OTHER 3 |
//! | contact | 5 | contact e-mail 3, company domain 2 |
//!
//! An unknown (absent) field, or a count of 0, scores 0 for its factor.

use super::leads::{Industry, Lead, Source};

/// The points of each factor; `total()` is the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcpBreakdown {
    pub industry: i64,
    pub company_size: i64,
    pub seat_estimate: i64,
    pub source: i64,
    pub contact: i64,
}

impl IcpBreakdown {
    pub fn total(&self) -> i64 {
        self.industry + self.company_size + self.seat_estimate + self.source + self.contact
    }
}

fn industry(industry: Option<Industry>) -> i64 {
    match industry {
        None => 0,
        Some(Industry::Healthcare | Industry::Legal | Industry::FinancialServices | Industry::Accounting) => 30,
        Some(Industry::Manufacturing | Industry::Construction | Industry::ProfessionalServices | Industry::RealEstate) => 20,
        Some(
            Industry::Education | Industry::Nonprofit | Industry::Government | Industry::Retail | Industry::Hospitality,
        ) => 10,
        Some(Industry::Technology | Industry::Other) => 5,
    }
}

fn company_size(employees: Option<i64>) -> i64 {
    match employees.unwrap_or(0) {
        i64::MIN..=0 => 0,
        1..=9 => 5,
        10..=49 => 15,
        50..=249 => 25,
        250..=999 => 15,
        _ => 5,
    }
}

fn seat_estimate(seats: Option<i64>) -> i64 {
    match seats.unwrap_or(0) {
        i64::MIN..=0 => 0,
        1..=9 => 5,
        10..=49 => 15,
        50..=249 => 25,
        _ => 20,
    }
}

fn source(source: Option<Source>) -> i64 {
    match source {
        None => 0,
        Some(Source::Referral) => 15,
        Some(Source::Partner) => 12,
        Some(Source::Inbound) => 10,
        Some(Source::Event) => 8,
        Some(Source::Outbound) => 5,
        Some(Source::Other) => 3,
    }
}

/// The breakdown of `lead`'s score.
pub fn score(lead: &Lead) -> IcpBreakdown {
    IcpBreakdown {
        industry: industry(lead.industry),
        company_size: company_size(lead.employee_count),
        seat_estimate: seat_estimate(lead.seat_estimate),
        source: source(lead.source),
        contact: if lead.contact_email.is_some() { 3 } else { 0 } + if lead.domain.is_some() { 2 } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::leads::Status;

    fn lead() -> Lead {
        Lead {
            id: "lead_x".into(),
            company_name: "Acme".into(),
            domain: None,
            industry: None,
            employee_count: None,
            seat_estimate: None,
            source: None,
            status: Status::New,
            contact_name: None,
            contact_email: None,
            notes: None,
            icp_score: 0,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn an_empty_lead_scores_zero_and_an_ideal_one_a_hundred() {
        assert_eq!(score(&lead()).total(), 0);
        let ideal = Lead {
            domain: Some("acme.com".into()),
            industry: Some(Industry::Healthcare),
            employee_count: Some(120),
            seat_estimate: Some(140),
            source: Some(Source::Referral),
            contact_email: Some("cio@acme.com".into()),
            ..lead()
        };
        assert_eq!(score(&ideal).total(), 100);
    }

    #[test]
    fn size_bands_have_their_edges_where_documented() {
        let sizes: Vec<i64> = [0, 1, 9, 10, 49, 50, 249, 250, 999, 1000].into_iter().map(|n| company_size(Some(n))).collect();
        assert_eq!(sizes, [0, 5, 5, 15, 15, 25, 25, 15, 15, 5]);
        let seats: Vec<i64> = [0, 1, 10, 50, 250, 100_000].into_iter().map(|n| seat_estimate(Some(n))).collect();
        assert_eq!(seats, [0, 5, 15, 25, 20, 20]);
    }

    #[test]
    fn every_maximum_is_reachable_and_sums_to_a_hundred() {
        let best_industry = Industry::NAMES.iter().map(|n| industry(Industry::parse(n))).max();
        let best_source = Source::NAMES.iter().map(|n| source(Source::parse(n))).max();
        assert_eq!((best_industry, best_source), (Some(30), Some(15)));
        let worst = Industry::NAMES.iter().map(|n| industry(Industry::parse(n))).min();
        assert_eq!(worst, Some(5), "every named industry scores something");
    }
}
