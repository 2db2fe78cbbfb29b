//! Group customers (集团客户): each group's account, agreement and fate, its products, its key
//! people and its account manager's visits, and the members who follow a group that defects to a
//! competitor (整体离网).
//!
//! A group's fate comes from its own stream and is cheap, so each member recomputes it rather
//! than sharing state across the parallel chunks; whether a member is a key person and whether it
//! follows comes from a stream of its own, so subscribers' other draws are untouched.

use std::fmt::Write as _;

use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use rand_pcg::Pcg64Mcg;
use retain_data::{GROUP_PRODUCT_KINDS, GROUP_TIERS, INDUSTRIES, KEY_ROLES};

use super::churn::Path;
use super::profile::{county_factors, draw_location};
use super::{
    Out, STREAM_GROUP, STREAM_GROUP_FATE, STREAM_GROUP_MEMBER, World, add_months, random_day,
    rng_for, weighted,
};
use crate::catalog::{CITIES, COMPETITORS};
use crate::csvline::Line;

/// Share of subscribers outside a family: 30% of the blocks of five hold a family of 2 to 5.
const NON_FAMILY_SHARE: f64 = 1.0 - 0.3 * 3.5 / 5.0;
/// Share of non-family subscribers who belong to a group.
pub(super) const MEMBER_SHARE: f64 = 0.15;
/// Key people a group has among its members, on average.
const KEY_PEOPLE: f64 = 3.0;
/// Scales the defection hazard so that about 15% of groups defect.
const DEFECTION_SCALE: f64 = 0.65;

/// Industry weights among group customers, in [`INDUSTRIES`]' order: manufacturing and trade
/// dominate, international organisations are all but absent.
const INDUSTRY_WEIGHTS: [f64; 20] = [
    0.02, 0.01, 0.22, 0.02, 0.08, 0.14, 0.05, 0.05, 0.07, 0.04, 0.04, 0.06, 0.03, 0.02, 0.02, 0.05,
    0.04, 0.02, 0.06, 0.002,
];

/// What follows the trade name, by industry.
const NAME_ENDINGS: [&[&str]; 20] = [
    &[
        "农业科技有限公司",
        "生态农业发展有限公司",
        "水产养殖专业合作社",
    ],
    &["矿业有限公司", "石材开采有限公司"],
    &[
        "机械制造有限公司",
        "电子科技有限公司",
        "纺织有限公司",
        "精密制造有限公司",
        "新材料有限公司",
    ],
    &["热电有限公司", "燃气有限公司", "水务有限公司"],
    &["建设工程有限公司", "建筑安装有限公司", "装饰工程有限公司"],
    &["商贸有限公司", "贸易有限公司", "超市连锁有限公司"],
    &["物流有限公司", "运输有限公司", "快递服务有限公司"],
    &["酒店管理有限公司", "餐饮管理有限公司", "大酒店有限公司"],
    &["信息技术有限公司", "软件有限公司", "网络科技有限公司"],
    &["投资管理有限公司", "融资担保有限公司", "保险代理有限公司"],
    &["房地产开发有限公司", "物业管理有限公司", "置业有限公司"],
    &[
        "企业管理咨询有限公司",
        "人力资源有限公司",
        "广告传媒有限公司",
    ],
    &[
        "检测技术有限公司",
        "工程设计研究院有限公司",
        "生物科技有限公司",
    ],
    &["环境工程有限公司", "园林绿化有限公司", "环保科技有限公司"],
    &["家政服务有限公司", "汽车维修有限公司", "洗涤服务有限公司"],
    &["教育科技有限公司", "职业培训学校", "外国语学校"],
    &["医院", "健康管理有限公司", "养老服务中心"],
    &["文化传媒有限公司", "体育发展有限公司", "影视文化有限公司"],
    &["商会", "行业协会", "社会工作服务中心"],
    &["国际交流中心"],
];

// Trade names (字号) are two characters, or three once the two-character ones run out. No name
// ending starts with a third character, so names are unique as long as trade names are.
const TRADE_FIRST: [char; 48] = [
    '恒', '华', '鑫', '盛', '宏', '金', '瑞', '汇', '国', '天', '嘉', '永', '新', '荣', '中', '东',
    '兴', '丰', '泰', '安', '明', '佳', '和', '信', '诚', '宝', '通', '远', '志', '润', '源', '德',
    '广', '昌', '海', '创', '博', '联', '凯', '正', '亿', '顺', '万', '益', '景', '云', '龙', '锦',
];
const TRADE_SECOND: [char; 47] = [
    '达', '通', '盛', '泰', '源', '丰', '德', '信', '诚', '茂', '发', '利', '业', '隆', '昌', '宇',
    '邦', '力', '腾', '辰', '华', '美', '康', '鼎', '捷', '拓', '远', '合', '威', '杰', '翔', '瑞',
    '睿', '安', '宁', '兴', '勤', '创', '光', '成', '洋', '洲', '嘉', '禾', '鸿', '众', '佳',
];
const TRADE_THIRD: [char; 24] = [
    '昊', '晟', '科', '隆', '弘', '辉', '祥', '峰', '航', '泽', '悦', '晨', '卓', '越', '蓝', '星',
    '旭', '阳', '朗', '铭', '启', '宸', '坤', '岳',
];

const CONTACT_TITLES: [&str; 4] = ["办公室主任", "行政经理", "综合部主任", "信息中心主任"];
const FINANCE_TITLES: [&str; 3] = ["财务经理", "财务总监", "会计主管"];

/// Group visits a month by tier (A to D).
const VISIT_RATES: [f64; 4] = [1.2, 0.6, 0.3, 0.12];

/// One group's account and fate, drawn from its own stream.
pub(super) struct GroupFate {
    pub(super) id: String,
    pub(super) name: String,
    /// Index into [`INDUSTRIES`].
    pub(super) industry: usize,
    pub(super) employees: i64,
    /// Index into [`GROUP_TIERS`]: 0 is A.
    pub(super) tier: usize,
    pub(super) branch: String,
    pub(super) manager: String,
    pub(super) contract_start: NaiveDate,
    pub(super) contract_end: NaiveDate,
    /// Month (index into the window's months) the group leaves for a competitor; at or past
    /// the window's length it leaves after the window, with the run-up inside it.
    pub(super) defection: Option<usize>,
    pub(super) expected_members: f64,
}

impl GroupFate {
    pub(super) fn draw(world: &World, g: u64) -> GroupFate {
        Self::draw_with_rng(world, g).0
    }

    /// The fate, and its stream positioned for the group's own rows.
    fn draw_with_rng(world: &World, g: u64) -> (GroupFate, Pcg64Mcg) {
        let mut rng = rng_for(world.seed, STREAM_GROUP_FATE, g);
        // The members' place, as `draw_profile` gives it them.
        let (city, county) = draw_location(&mut rng_for(world.seed, STREAM_GROUP, g));
        let branch = format!("{}{:02}", CITIES[city].code, county + 1);
        let expected_members = expected_members(world, g);

        let industry = weighted(&mut rng, &INDUSTRY_WEIGHTS);
        // Bigger accounts are graded higher: `size` runs from 0 (one member) to 1 (a hundred).
        let size = (expected_members.max(1.0).log10() / 2.0).min(1.0);
        let tier = weighted(
            &mut rng,
            &[
                0.02 + 0.15 * size,
                0.12 + 0.25 * size,
                0.4,
                0.46 - 0.3 * size,
            ],
        );
        let per_member = [12.0_f64, 6.0, 3.0, 2.0][tier];
        let headcount: f64 = LogNormal::new(per_member.ln(), 0.6)
            .expect("valid")
            .sample(&mut rng);
        let employees = (expected_members.max(1.0) * headcount).round().max(1.0) as i64;
        let manager = format!("{branch}-M{:02}", rng.random_range(1..=4));

        let window_end = world.window_end();
        let term = [12, 24, 36][weighted(&mut rng, &[0.3, 0.4, 0.3])];
        let contract_end = random_day(
            &mut rng,
            add_months(window_end, -12),
            add_months(window_end, 12),
        );
        let contract_start = add_months(contract_end + Duration::days(1), -term);

        let n = world.months.len() as i64;
        let end_month = month_index(world, contract_end);
        let ending = (n - 6..=n + 2).contains(&end_month);
        let (_, competitor) = county_factors(world.seed, city, county);
        let hazard = 0.05
            + if ending { 0.15 } else { 0.0 }
            + 0.15 * competitor
            + if tier >= 2 { 0.05 } else { 0.0 };
        let defects = rng.random::<f64>() < DEFECTION_SCALE * hazard;
        // Followers decide four months ahead, so the month must leave room for that.
        let month = rng.random_range((n - 6).max(4)..=n + 2) as usize;
        // A group lost inside the window leaves under an agreement that had begun by then: one
        // drawn to start later is the next one, so the current one is the one before it.
        let (contract_start, contract_end) =
            if defects && month < world.months.len() && contract_start >= world.months[month] {
                (
                    add_months(contract_start, -term),
                    add_months(contract_end + Duration::days(1), -term) - Duration::days(1),
                )
            } else {
                (contract_start, contract_end)
            };

        let endings = NAME_ENDINGS[industry];
        let ending_name = endings[rng.random_range(0..endings.len())];
        let name = format!(
            "{}{}{}",
            CITIES[city].name,
            trade_name(world.seed, g),
            ending_name
        );
        let fate = GroupFate {
            id: group_id(g),
            name,
            industry,
            employees,
            tier,
            branch,
            manager,
            contract_start,
            contract_end,
            defection: defects.then_some(month),
            expected_members,
        };
        (fate, rng)
    }

    /// A title for a key person in `role` (one of [`KEY_ROLES`]); `pick` is any draw.
    fn title(&self, role: &str, pick: usize) -> &'static str {
        let bosses: &[&str] = match INDUSTRIES[self.industry].0 {
            "P" => &["校长", "董事长"],
            "Q" => &["院长", "总经理"],
            "S" | "T" => &["会长", "秘书长"],
            _ => &["总经理", "董事长", "副总经理"],
        };
        let titles: &[&str] = match role {
            "decision_maker" => bosses,
            "contact" => &CONTACT_TITLES,
            _ => &FINANCE_TITLES,
        };
        titles[pick % titles.len()]
    }
}

pub(super) fn group_id(g: u64) -> String {
    format!("G{g:05}")
}

/// Members group `g` has on average: `draw_profile` puts a non-family subscriber in group
/// `floor(u² · groups)`, so the group's share is the width of its slice of `u`.
fn expected_members(world: &World, g: u64) -> f64 {
    let groups = world.groups as f64;
    let width = ((g + 1) as f64 / groups).min(1.0).sqrt() - (g as f64 / groups).sqrt();
    world.subscribers as f64 * NON_FAMILY_SHARE * MEMBER_SHARE * width
}

/// Months from the window's first month to the month of `date` (negative before the window).
fn month_index(world: &World, date: NaiveDate) -> i64 {
    let first = world.months[0];
    i64::from(date.year() - first.year()) * 12 + i64::from(date.month()) - i64::from(first.month())
}

/// A trade name (字号) distinct for every group of an operator; an affine map of the group
/// number scatters neighbouring groups over the names.
fn trade_name(seed: u64, g: u64) -> String {
    let firsts = TRADE_FIRST.len() as u64;
    let seconds = TRADE_SECOND.len() as u64;
    let two = firsts * seconds;
    let three = two * TRADE_THIRD.len() as u64;
    // 1013 and 7919 are primes dividing neither 48·47 nor 48·47·24.
    let (k, chars) = if g < two {
        ((g * 1013 + seed % two) % two, 2)
    } else if g < two + three {
        (((g - two) * 7919 + seed % three) % three, 3)
    } else {
        (g % three, 4)
    };
    let mut name = String::new();
    name.push(TRADE_FIRST[(k % firsts) as usize]);
    name.push(TRADE_SECOND[(k / firsts % seconds) as usize]);
    if chars >= 3 {
        name.push(TRADE_THIRD[(k / two) as usize]);
    }
    if chars == 4 {
        // Beyond some 56,000 groups the number itself keeps names apart.
        let _ = write!(name, "{}", g / three);
    }
    name
}

/// A group member's part in its group: key person or not, and whether (when, how) it follows the
/// group out.
pub(super) struct Membership {
    pub(super) follow: Option<(usize, Path)>,
}

/// Decides member `index` of `fate`'s group, writing its key-person row if it is one.
pub(super) fn membership(
    world: &World,
    fate: &GroupFate,
    index: u64,
    subscriber_id: i64,
    out: &mut Out,
) -> Membership {
    let mut rng = rng_for(world.seed, STREAM_GROUP_MEMBER, index);
    let key = rng.random::<f64>() < (KEY_PEOPLE / fate.expected_members).min(1.0);
    let role = rng.random_range(0..KEY_ROLES.len());
    let title = rng.random_range(0..6);
    let follows = rng.random::<f64>() < if key { 0.9 } else { 0.6 };
    let jitter = rng.random_range(0..=1);
    let path = if rng.random::<f64>() < 0.6 {
        Path::PortOut
    } else {
        Path::FormalCancel
    };
    if key {
        let mut line = Line::default();
        line.text(&fate.id)
            .text(&format!("K{subscriber_id}"))
            .text(KEY_ROLES[role])
            .int(subscriber_id)
            .text(fate.title(KEY_ROLES[role], title));
        out.group_key_people.extend_from_slice(line.finish());
        out.counts.group_key_people += 1;
    }
    // Decision makers move first; the rest of the staff follow over the next months.
    let follow = fate.defection.filter(|_| follows).map(|d| {
        let month = match (key, KEY_ROLES[role]) {
            (true, "decision_maker") => d - 4,
            (true, _) => d - 3,
            (false, _) => d - 3 + jitter,
        };
        (month, path)
    });
    Membership { follow }
}

/// Writes group `g`: its row, its key person from outside our subscribers, its products, its
/// visits and its truth.
pub(crate) fn write_group(world: &World, g: u64, out: &mut Out) {
    let (fate, mut rng) = GroupFate::draw_with_rng(world, g);
    let n = world.months.len();
    let lost = fate.defection.filter(|&d| d < n);
    let status_date = match lost {
        Some(d) => world.months[d] + Duration::days(rng.random_range(1..=9)),
        None => fate.contract_start.min(world.months[0]),
    };

    if rng.random::<f64>() < 0.3 {
        let title = rng.random_range(0..6);
        let mut line = Line::default();
        line.text(&fate.id)
            .text(&format!("K{}-X", fate.id))
            .text("decision_maker")
            .text("")
            .text(fate.title("decision_maker", title));
        out.group_key_people.extend_from_slice(line.finish());
        out.counts.group_key_people += 1;
    }

    write_products(world, &fate, lost.map(|_| status_date), &mut rng, out);
    write_visits(world, &fate, &mut rng, out);

    let mut line = Line::default();
    line.text(&fate.id)
        .text(&fate.name)
        .text(INDUSTRIES[fate.industry].0)
        .int(fate.employees)
        .text(GROUP_TIERS[fate.tier])
        .text(&fate.branch)
        .text(&fate.manager)
        .date(fate.contract_start)
        .date(fate.contract_end)
        .text(if lost.is_some() { "lost" } else { "active" })
        .date(status_date);
    out.groups.extend_from_slice(line.finish());
    out.counts.groups += 1;

    let mut line = Line::default();
    line.text(&fate.id)
        .text(if fate.defection.is_some() {
            "true"
        } else {
            "false"
        })
        .text(
            &fate
                .defection
                .map(|d| world.month_text(d))
                .unwrap_or_default(),
        )
        .text(GROUP_TIERS[fate.tier]);
    out.truth_groups.extend_from_slice(line.finish());
    if fate.defection.is_some() {
        out.counts.group_defections += 1;
    }
}

struct Product {
    kind: &'static str,
    fee: f64,
    start: NaiveDate,
    end: Option<NaiveDate>,
}

/// The group's products; a defecting group drops one two months ahead, and a lost group's
/// products end with it.
fn write_products(
    world: &World,
    fate: &GroupFate,
    lost_on: Option<NaiveDate>,
    rng: &mut Pcg64Mcg,
    out: &mut Out,
) {
    let n = world.months.len();
    let window_start = world.months[0];
    let high = fate.tier <= 1;
    let mut products = Vec::new();
    for kind in GROUP_PRODUCT_KINDS {
        // Yuan a month for tiers A to D.
        let (share, fees): (f64, [f64; 4]) = match *kind {
            "vpmn" => (0.7, [2_000.0, 800.0, 300.0, 120.0]),
            "dedicated_line" => (
                if high { 0.6 } else { 0.25 },
                [8_000.0, 3_000.0, 1_200.0, 600.0],
            ),
            "data_pool" => (0.35, [3_000.0, 1_000.0, 400.0, 150.0]),
            _ => continue,
        };
        if rng.random::<f64>() >= share {
            continue;
        }
        let fee = (fees[fate.tier] * rng.random_range(0.8..1.25) / 10.0).round() * 10.0;
        let start = random_day(
            rng,
            add_months(window_start, -60),
            window_start - Duration::days(1),
        );
        products.push(Product {
            kind,
            fee,
            start,
            end: None,
        });
    }
    let cancel_month = match fate.defection {
        Some(d) if d - 2 < n => (rng.random::<f64>() < 0.6).then_some(d - 2),
        Some(_) => None,
        None => (rng.random::<f64>() < 0.03).then(|| rng.random_range(0..n)),
    };
    if let Some(t) = cancel_month
        && !products.is_empty()
    {
        let i = rng.random_range(0..products.len());
        products[i].end = Some(random_day(rng, world.months[t], world.month_end(t)));
    }
    for p in &mut products {
        if let Some(day) = lost_on {
            p.end = Some(p.end.map_or(day, |e| e.min(day)));
        }
        let mut line = Line::default();
        line.text(&fate.id)
            .text(&format!("{}-{}", fate.id, p.kind))
            .text(p.kind)
            .float(p.fee)
            .date(p.start);
        match p.end {
            Some(end) => line.date(end).text("cancelled"),
            None => line.text("").text("active"),
        };
        out.group_products.extend_from_slice(line.finish());
        out.counts.group_products += 1;
    }
}

/// The account manager's visits over the window: fewer in the half year before a defection (a
/// neglected account is the one that leaves), competitor offers and complaints in its run-up,
/// renewals near the agreement's end, none once the group is lost.
fn write_visits(world: &World, fate: &GroupFate, rng: &mut Pcg64Mcg, out: &mut Out) {
    let n = world.months.len();
    let end_month = month_index(world, fate.contract_end);
    let mut k = 0;
    for t in 0..n {
        if fate.defection.is_some_and(|d| t >= d) {
            break;
        }
        let neglected = fate.defection.is_some_and(|d| t + 6 >= d);
        let rate = VISIT_RATES[fate.tier] * if neglected { 0.35 } else { 1.0 };
        let visits = Poisson::new(rate).map_or(0.0, |p| p.sample(rng)) as usize;
        let mut days: Vec<NaiveDate> = (0..visits)
            .map(|_| random_day(rng, world.months[t], world.month_end(t)))
            .collect();
        days.sort_unstable();
        let run_up = fate.defection.is_some_and(|d| t + 3 >= d);
        let renewal = fate.defection.is_none() && (end_month - 3..=end_month).contains(&(t as i64));
        // routine, needs_follow_up, complaint, competitor_offer, renewal_agreed, expansion
        let weights: [f64; 6] = if run_up {
            [0.25, 0.17, 0.2, 0.35, 0.0, 0.03]
        } else if renewal {
            [0.43, 0.17, 0.04, 0.02, 0.3, 0.04]
        } else {
            [0.62, 0.25, 0.05, 0.02, 0.0, 0.06]
        };
        for day in days {
            k += 1;
            let channel =
                ["onsite", "phone", "wechat", "meeting"][weighted(rng, &[0.4, 0.3, 0.2, 0.1])];
            let outcome = weighted(rng, &weights);
            let note = visit_note(outcome, rng);
            let mut line = Line::default();
            line.text(&format!("{}-V{k}", fate.id))
                .text(&fate.id)
                .text(&fate.manager)
                .date(day)
                .text(channel)
                .text(retain_data::VISIT_OUTCOMES[outcome])
                .text(&note);
            out.group_visits.extend_from_slice(line.finish());
            out.counts.group_visits += 1;
        }
    }
}

/// What the manager wrote down, for an outcome (index into `VISIT_OUTCOMES`).
fn visit_note(outcome: usize, rng: &mut Pcg64Mcg) -> String {
    let pick =
        |rng: &mut Pcg64Mcg, notes: &[&str]| notes[rng.random_range(0..notes.len())].to_owned();
    match outcome {
        0 => pick(
            rng,
            &[
                "例行拜访，客户使用正常",
                "走访了解近期业务使用情况，无异常",
                "节前走访，维系客户关系",
            ],
        ),
        1 => pick(
            rng,
            &[
                "客户咨询资费调整，待反馈",
                "客户提出增加专线带宽需求，待核实",
                "部分员工反映话费问题，需跟进",
            ],
        ),
        2 => pick(
            rng,
            &[
                "客户反映办公区信号覆盖差，要求尽快处理",
                "对账单有异议，投诉费用不清",
                "反映专线近期多次中断",
            ],
        ),
        3 => {
            let competitor = COMPETITORS[rng.random_range(0..COMPETITORS.len())];
            let what = pick(
                rng,
                &[
                    "上门推荐集团优惠方案",
                    "报价更低，客户正在比较",
                    "提出整体迁移并赠送终端",
                ],
            );
            format!("获悉{competitor}{what}")
        }
        4 => pick(rng, &["集团协议续签意向达成", "客户同意续签协议，待走流程"]),
        _ => pick(
            rng,
            &[
                "新增员工入网需求",
                "洽谈新增专线业务",
                "客户拟扩大流量池规模",
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::SynthParams;

    fn world(subscribers: u64, months: u32, seed: u64) -> World {
        crate::world(&SynthParams {
            subscribers,
            months,
            seed,
            ..SynthParams::default()
        })
    }

    #[test]
    fn names_are_unique_and_endings_cannot_mimic_a_longer_trade_name() {
        for ending in NAME_ENDINGS.iter().flat_map(|e| e.iter()) {
            let first = ending.chars().next().unwrap();
            assert!(!TRADE_THIRD.contains(&first), "{ending}");
        }
        let mut seen = HashSet::new();
        for g in 0..70_000 {
            assert!(seen.insert(trade_name(7, g)), "group {g}");
        }
        let w = world(60_000, 18, 3);
        let names: HashSet<String> = (0..w.groups).map(|g| GroupFate::draw(&w, g).name).collect();
        assert_eq!(names.len() as u64, w.groups);
    }

    #[test]
    fn expected_members_add_up_to_the_member_share() {
        let w = world(20_000, 18, 1);
        let total: f64 = (0..w.groups).map(|g| expected_members(&w, g)).sum();
        let want = 20_000.0 * NON_FAMILY_SHARE * MEMBER_SHARE;
        assert!((total - want).abs() < 1e-6, "{total} vs {want}");
    }

    #[test]
    fn about_one_group_in_seven_defects() {
        for seed in [1, 2, 3] {
            let w = world(20_000, 18, seed);
            let n = w.months.len();
            let fates: Vec<GroupFate> = (0..w.groups).map(|g| GroupFate::draw(&w, g)).collect();
            let defected = fates.iter().filter(|f| f.defection.is_some()).count();
            let share = defected as f64 / fates.len() as f64;
            assert!((0.08..=0.24).contains(&share), "seed {seed}: {share}");
            for f in &fates {
                assert!(f.contract_start <= f.contract_end);
                if let Some(d) = f.defection {
                    assert!((n - 6..=n + 2).contains(&d), "seed {seed}: month {d}");
                }
            }
        }
    }

    #[test]
    fn tiny_windows_leave_room_for_the_run_up() {
        for months in [3, 4, 5, 120] {
            let w = world(600, months, 5);
            for g in 0..w.groups {
                let f = GroupFate::draw(&w, g);
                assert!(
                    f.defection
                        .is_none_or(|d| d >= 4 && d <= months as usize + 2)
                );
            }
        }
    }
}
