//! Service lines: what a contract sells, how many, at what price, billed how often; and
//! the one formula that turns them into monthly recurring revenue, shared by a
//! contract's totals and the MRR report.

use super::validate::{self, Violations};

pub(crate) const DESCRIPTION_MAX: usize = 500;
pub const QUANTITY_MAX: i64 = 1_000_000;
/// 100 million in major units, in minor units.
pub const UNIT_PRICE_MAX: i64 = 10_000_000_000;
pub const LINES_MAX: usize = 200;

named_enum!(
    /// What an MSP sells. `PROJECT` lines are one-off work, never recurring revenue.
    ServiceCategory {
        ManagedServices => "MANAGED_SERVICES",
        Security => "SECURITY",
        Backup => "BACKUP",
        Cloud => "CLOUD",
        Network => "NETWORK",
        Voip => "VOIP",
        Project => "PROJECT",
        Other => "OTHER",
    }
);

impl ServiceCategory {
    /// How many categories recur (all but `PROJECT`).
    pub const RECURRING: usize = ServiceCategory::NAMES.len() - 1;

    pub fn is_recurring(self) -> bool {
        self != ServiceCategory::Project
    }
}

named_enum!(
    /// How often a line is billed.
    BillingPeriod {
        Monthly => "MONTHLY",
        Quarterly => "QUARTERLY",
        Annual => "ANNUAL",
    }
);

impl BillingPeriod {
    /// Twelfths of one period's amount that fall in one month: 12, 4, 1.
    fn twelfths_per_month(self) -> i128 {
        match self {
            BillingPeriod::Monthly => 12,
            BillingPeriod::Quarterly => 4,
            BillingPeriod::Annual => 1,
        }
    }
}

/// One line of a contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLine {
    pub category: ServiceCategory,
    pub description: String,
    pub quantity: i64,
    /// Per unit and billing period, in minor units of the contract's currency.
    pub unit_price: i64,
    pub billing_period: BillingPeriod,
}

impl ServiceLine {
    /// `quantity × unitPrice`: one billing period's amount.
    pub fn amount(&self) -> i128 {
        i128::from(self.quantity) * i128::from(self.unit_price)
    }
}

/// A service line as sent: every field checked by `parse_lines`.
#[derive(Debug, Clone, Default)]
pub struct LineInput {
    pub category: Option<String>,
    pub description: Option<String>,
    pub quantity: Option<i64>,
    pub unit_price: Option<i64>,
    pub billing_period: Option<String>,
}

/// Checks every line, recording each failing field as `serviceLines[i].field`.
pub fn parse_lines(v: &mut Violations, inputs: Vec<LineInput>) -> Vec<ServiceLine> {
    if inputs.len() > LINES_MAX {
        v.add("serviceLines", format!("must have at most {LINES_MAX} lines"));
        return Vec::new();
    }
    let mut lines = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let field = |name: &str| format!("serviceLines[{i}].{name}");
        let before = v.len();
        let category = enum_field(v, &field("category"), input.category, ServiceCategory::parse, ServiceCategory::NAMES);
        let description = match input.description {
            None => {
                v.add(field("description"), "is required");
                None
            }
            Some(text) => validate::text(v, &field("description"), &text, DESCRIPTION_MAX),
        };
        let quantity = bounded(v, &field("quantity"), input.quantity, QUANTITY_MAX);
        let unit_price = bounded(v, &field("unitPrice"), input.unit_price, UNIT_PRICE_MAX);
        let billing_period = enum_field(v, &field("billingPeriod"), input.billing_period, BillingPeriod::parse, BillingPeriod::NAMES);
        if let (Some(category), Some(description), Some(quantity), Some(unit_price), Some(billing_period), true) =
            (category, description, quantity, unit_price, billing_period, v.len() == before)
        {
            lines.push(ServiceLine { category, description, quantity, unit_price, billing_period });
        }
    }
    lines
}

fn enum_field<E>(
    v: &mut Violations,
    field: &str,
    value: Option<String>,
    parse: fn(&str) -> Option<E>,
    names: &[&str],
) -> Option<E> {
    match value {
        None => {
            v.add(field, "is required");
            None
        }
        Some(text) => {
            let parsed = parse(text.trim());
            if parsed.is_none() {
                v.add(field, format!("must be one of {}", names.join(", ")));
            }
            parsed
        }
    }
}

fn bounded(v: &mut Violations, field: &str, value: Option<i64>, max: i64) -> Option<i64> {
    match value {
        None => {
            v.add(field, "is required");
            None
        }
        Some(n) if (0..=max).contains(&n) => Some(n),
        Some(_) => {
            v.add(field, format!("must be between 0 and {max}"));
            None
        }
    }
}

/// Monthly recurring revenue kept exact: in twelfths of a minor unit, so that
/// quarterly and annual lines add up without rounding until the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Twelfths(i128);

impl Twelfths {
    /// A line's monthly share: the amount for monthly lines, a third for quarterly, a
    /// twelfth for annual; zero for `PROJECT` (one-off) lines.
    pub fn of(line: &ServiceLine) -> Twelfths {
        if line.category.is_recurring() {
            Twelfths(line.amount() * line.billing_period.twelfths_per_month())
        } else {
            Twelfths(0)
        }
    }

    pub fn add(&mut self, other: Twelfths) {
        self.0 += other.0;
    }

    /// Rounded half up to a whole minor unit.
    pub fn minor_units(self) -> i64 {
        clamp((self.0 + 6).div_euclid(12))
    }
}

fn clamp(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A contract's totals: its monthly recurring revenue and its one-off (`PROJECT`) value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub monthly_recurring: i64,
    pub one_off: i64,
}

impl Totals {
    pub fn of(lines: &[ServiceLine]) -> Totals {
        let mut mrr = Twelfths::default();
        let mut one_off: i128 = 0;
        for line in lines {
            mrr.add(Twelfths::of(line));
            if !line.category.is_recurring() {
                one_off += line.amount();
            }
        }
        Totals { monthly_recurring: mrr.minor_units(), one_off: clamp(one_off) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(category: ServiceCategory, quantity: i64, unit_price: i64, period: BillingPeriod) -> ServiceLine {
        ServiceLine { category, description: "x".into(), quantity, unit_price, billing_period: period }
    }

    #[test]
    fn monthly_recurring_normalises_periods_and_leaves_projects_out() {
        let lines = [
            line(ServiceCategory::ManagedServices, 25, 9_900, BillingPeriod::Monthly),
            line(ServiceCategory::Backup, 1, 30_000, BillingPeriod::Quarterly),
            line(ServiceCategory::Security, 2, 60_000, BillingPeriod::Annual),
            line(ServiceCategory::Project, 1, 500_000, BillingPeriod::Monthly),
        ];
        let totals = Totals::of(&lines);
        assert_eq!(totals.monthly_recurring, 247_500 + 10_000 + 10_000);
        assert_eq!(totals.one_off, 500_000);
    }

    #[test]
    fn rounding_happens_once_on_the_sum() {
        // Three annual lines of 1 cent: 3/12 of a cent a month rounds to 0, one line
        // of 6 cents a year is half a cent and rounds up.
        let cent = line(ServiceCategory::Other, 1, 1, BillingPeriod::Annual);
        assert_eq!(Totals::of(&[cent.clone(), cent.clone(), cent]).monthly_recurring, 0);
        assert_eq!(Totals::of(&[line(ServiceCategory::Other, 6, 1, BillingPeriod::Annual)]).monthly_recurring, 1);
        assert_eq!(Totals::of(&[line(ServiceCategory::Other, 1, 100, BillingPeriod::Quarterly)]).monthly_recurring, 33);
    }

    #[test]
    fn every_failing_line_field_is_named() {
        let mut v = Violations::default();
        let lines = parse_lines(
            &mut v,
            vec![
                LineInput {
                    category: Some("SECURITY".into()),
                    description: Some("EDR".into()),
                    quantity: Some(10),
                    unit_price: Some(500),
                    billing_period: Some("MONTHLY".into()),
                },
                LineInput { category: Some("CATERING".into()), quantity: Some(-1), ..LineInput::default() },
            ],
        );
        assert_eq!(lines.len(), 1);
        let fields: Vec<String> = v.into_vec().into_iter().map(|x| x.field).collect();
        assert_eq!(
            fields,
            [
                "serviceLines[1].category",
                "serviceLines[1].description",
                "serviceLines[1].quantity",
                "serviceLines[1].unitPrice",
                "serviceLines[1].billingPeriod"
            ]
        );
    }
}
