//! The synthetic operator's fixed world: plans, geography, competitors, offer kinds and the true
//! effect of each offer on each churn cause.

use chrono::NaiveDate;

pub(crate) struct Plan {
    pub id: &'static str,
    pub name: &'static str,
    pub fee: f64,
    pub data_mb: i64,
    pub minutes: i64,
    pub tier: i64,
}

/// Sorted by fee; `tier` rises with it.
pub(crate) const PLANS: &[Plan] = &[
    Plan {
        id: "P008",
        name: "8元保号套餐",
        fee: 8.0,
        data_mb: 1_024,
        minutes: 0,
        tier: 1,
    },
    Plan {
        id: "P018",
        name: "18元关爱卡",
        fee: 18.0,
        data_mb: 2_048,
        minutes: 300,
        tier: 1,
    },
    Plan {
        id: "P019",
        name: "19元畅享套餐",
        fee: 19.0,
        data_mb: 5_120,
        minutes: 100,
        tier: 1,
    },
    Plan {
        id: "P029",
        name: "29元畅享套餐",
        fee: 29.0,
        data_mb: 10_240,
        minutes: 200,
        tier: 2,
    },
    Plan {
        id: "P039",
        name: "39元5G畅享",
        fee: 39.0,
        data_mb: 20_480,
        minutes: 300,
        tier: 2,
    },
    Plan {
        id: "P059",
        name: "59元5G畅享",
        fee: 59.0,
        data_mb: 30_720,
        minutes: 500,
        tier: 3,
    },
    Plan {
        id: "P079",
        name: "79元5G畅享",
        fee: 79.0,
        data_mb: 40_960,
        minutes: 600,
        tier: 3,
    },
    Plan {
        id: "P088",
        name: "88元政企专享",
        fee: 88.0,
        data_mb: 40_960,
        minutes: 1_000,
        tier: 3,
    },
    Plan {
        id: "P099",
        name: "99元5G畅享",
        fee: 99.0,
        data_mb: 61_440,
        minutes: 800,
        tier: 4,
    },
    Plan {
        id: "P129",
        name: "129元5G畅享",
        fee: 129.0,
        data_mb: 81_920,
        minutes: 1_000,
        tier: 4,
    },
    Plan {
        id: "P169",
        name: "169元5G尊享",
        fee: 169.0,
        data_mb: 102_400,
        minutes: 1_500,
        tier: 5,
    },
    Plan {
        id: "P199",
        name: "199元全家享融合",
        fee: 199.0,
        data_mb: 102_400,
        minutes: 2_000,
        tier: 5,
    },
    Plan {
        id: "P239",
        name: "239元5G尊享",
        fee: 239.0,
        data_mb: 153_600,
        minutes: 2_000,
        tier: 5,
    },
];

pub(crate) fn plan_index(id: &str) -> usize {
    PLANS.iter().position(|p| p.id == id).unwrap_or(0)
}

pub(crate) const FAMILY_PLAN: usize = 11;
pub(crate) const GROUP_PLAN: usize = 7;
pub(crate) const SENIOR_PLAN: usize = 1;

pub(crate) struct City {
    pub name: &'static str,
    pub code: &'static str,
    pub weight: f64,
    pub counties: &'static [&'static str],
}

pub(crate) const PROVINCE: &str = "江苏";

pub(crate) const CITIES: &[City] = &[
    City {
        name: "南京",
        code: "NJ",
        weight: 0.18,
        counties: &["玄武区", "秦淮区", "鼓楼区", "江宁区", "浦口区", "溧水区"],
    },
    City {
        name: "苏州",
        code: "SZ",
        weight: 0.20,
        counties: &["姑苏区", "吴中区", "相城区", "昆山市", "常熟市", "张家港市"],
    },
    City {
        name: "无锡",
        code: "WX",
        weight: 0.12,
        counties: &["梁溪区", "滨湖区", "江阴市", "宜兴市"],
    },
    City {
        name: "常州",
        code: "CZ",
        weight: 0.09,
        counties: &["天宁区", "武进区", "溧阳市"],
    },
    City {
        name: "徐州",
        code: "XZ",
        weight: 0.13,
        counties: &["云龙区", "铜山区", "邳州市", "沛县", "丰县"],
    },
    City {
        name: "南通",
        code: "NT",
        weight: 0.11,
        counties: &["崇川区", "海门区", "如皋市", "启东市"],
    },
    City {
        name: "扬州",
        code: "YZ",
        weight: 0.08,
        counties: &["广陵区", "邗江区", "高邮市"],
    },
    City {
        name: "盐城",
        code: "YC",
        weight: 0.09,
        counties: &["亭湖区", "东台市", "射阳县", "滨海县"],
    },
];

pub(crate) const COMPETITORS: &[&str] = &["联通", "电信", "广电"];

/// Causes of churn, as the synthetic truth records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Price,
    Network,
    ContractExpiry,
    Competitor,
    Billing,
    Relocation,
}

impl Cause {
    pub(crate) const ALL: [Cause; 6] = [
        Cause::Price,
        Cause::Network,
        Cause::ContractExpiry,
        Cause::Competitor,
        Cause::Billing,
        Cause::Relocation,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cause::Price => "price",
            Cause::Network => "network_quality",
            Cause::ContractExpiry => "contract_expiry",
            Cause::Competitor => "competitor_lure",
            Cause::Billing => "billing_dispute",
            Cause::Relocation => "relocation",
        }
    }
}

/// Offer kinds tried in past campaigns, with their id in the history, cost if accepted
/// (yuan; a discount's cost is a share of the fee, see `offer_cost`) and months of effect.
pub(crate) struct HistoricOffer {
    pub kind: &'static str,
    pub id: &'static str,
}

pub(crate) const HISTORIC_OFFERS: &[HistoricOffer] = &[
    HistoricOffer {
        kind: "fee_discount",
        id: "H-DISC20",
    },
    HistoricOffer {
        kind: "data_bonus",
        id: "H-DATA10G",
    },
    HistoricOffer {
        kind: "contract_renewal",
        id: "H-RENEW-DEVICE",
    },
    HistoricOffer {
        kind: "network_fix",
        id: "H-NETFIX",
    },
    HistoricOffer {
        kind: "bill_adjustment",
        id: "H-BILLADJ",
    },
    HistoricOffer {
        kind: "loyalty_upgrade",
        id: "H-LOYALTY",
    },
];

/// The probability that a subscriber who intends to leave for `cause`, reached with offer
/// `offer` (index into [`HISTORIC_OFFERS`]), stays. The pipeline never reads this; uplift
/// modelling must rediscover it from the campaign history.
pub(crate) fn save_probability(cause: Cause, offer: usize) -> f64 {
    const TABLE: [[f64; 6]; 6] = [
        // discount, data, renewal, netfix, billadj, loyalty
        [0.45, 0.25, 0.15, 0.02, 0.10, 0.15], // price
        [0.05, 0.08, 0.05, 0.50, 0.03, 0.05], // network quality
        [0.15, 0.10, 0.55, 0.02, 0.02, 0.20], // contract expiry
        [0.25, 0.20, 0.25, 0.03, 0.03, 0.15], // competitor lure
        [0.10, 0.05, 0.03, 0.02, 0.55, 0.10], // billing dispute
        [0.02, 0.02, 0.02, 0.01, 0.01, 0.02], // relocation
    ];
    let row = Cause::ALL.iter().position(|c| *c == cause).unwrap_or(0);
    TABLE[row][offer]
}

/// The ways out of the network a leaver can be won back from (the quantity paths).
pub(crate) const EXIT_PATHS: [&str; 4] = [
    "port_out",
    "formal_cancel",
    "requested_stop_cancel",
    "arrears_suspension_cancel",
];

/// The true return propensity of a leaver who took `path` out for `cause`: the chance of coming
/// back within four months unprompted, and the added chance when reached with a win-back offer
/// (of those who would not have come back anyway). A price or competitor leaver answers a
/// better deal; a relocated one hardly; an arrears cut-off is not a defection, and an offer
/// does little for it.
pub(crate) fn return_effect(path: &str, cause: Cause) -> (f64, f64) {
    let base = match path {
        "port_out" => 0.04,
        "formal_cancel" => 0.02,
        "requested_stop_cancel" => 0.05,
        _ => 0.03,
    };
    let lift = match cause {
        Cause::Price => 0.25,
        Cause::Competitor => 0.22,
        Cause::ContractExpiry => 0.15,
        Cause::Billing => 0.12,
        Cause::Network => 0.10,
        Cause::Relocation => 0.01,
    };
    let involuntary = if path == "arrears_suspension_cancel" {
        0.3
    } else {
        1.0
    };
    (base, lift * involuntary)
}

/// The cost of an accepted offer for a subscriber paying `fee` a month.
pub(crate) fn offer_cost(offer: usize, fee: f64) -> f64 {
    match HISTORIC_OFFERS[offer].kind {
        "fee_discount" => 0.2 * fee * 6.0,
        "data_bonus" => 30.0,
        "contract_renewal" => 300.0,
        "network_fix" => 150.0,
        "bill_adjustment" => 50.0,
        _ => 60.0,
    }
}

/// The cost of one contact attempt through a channel.
pub(crate) fn contact_cost(channel: &str) -> f64 {
    match channel {
        "sms" => 0.1,
        "app" => 0.05,
        "outbound_call" => 2.0,
        "store" => 5.0,
        _ => 30.0,
    }
}

/// Spring Festival (春节) dates: usage and churn follow them, not the Gregorian calendar.
pub(crate) fn spring_festival(year: i32) -> Option<NaiveDate> {
    let (m, d) = match year {
        2020 => (1, 25),
        2021 => (2, 12),
        2022 => (2, 1),
        2023 => (1, 22),
        2024 => (2, 10),
        2025 => (1, 29),
        2026 => (2, 17),
        2027 => (2, 6),
        2028 => (1, 26),
        2029 => (2, 13),
        2030 => (2, 3),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, m, d)
}
