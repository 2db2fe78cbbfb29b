//! Real-time decisions: for a subscriber at the counter or on the phone, the ranked offers of
//! the latest match run with reasons and a talking point, under the contact policy at that
//! moment. Everything is precomputed; a decision is a hash lookup and a few checks.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use retain_data::SubscriberId;
use serde::Serialize;

use crate::assign::Choice;
use crate::error::{Error, Result};
use crate::inputs::{Contact, Inputs, Ledger};
use crate::library::{Channel, Library};
use crate::policy::{Level, Policy};

/// Offers kept per subscriber.
const RANKED: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub offer_id: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: &'static str,
    pub channel: Channel,
    pub expected_value: f64,
    pub save_rate: f64,
    pub cost: f64,
    pub talking_point_zh: String,
    pub talking_point_en: String,
}

#[derive(Debug, Clone)]
struct Entry {
    msisdn: String,
    level: Level,
    reason: usize,
    p_churn: f64,
    clv: f64,
    offers: Vec<u32>,
}

/// The answer for one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub subscriber_id: SubscriberId,
    pub msisdn: String,
    pub as_of: NaiveDate,
    pub at_risk: bool,
    pub level: Option<Level>,
    pub p_churn: Option<f64>,
    pub clv: Option<f64>,
    pub reason: Option<&'static str>,
    pub reason_zh: Option<&'static str>,
    /// Why no offer may be made now, when one may not.
    pub blocked: Option<String>,
    pub offers: Vec<Ranked>,
}

/// The precomputed decisions of a match run.
#[derive(Debug, Default)]
pub struct DecisionIndex {
    pub as_of: NaiveDate,
    entries: HashMap<i64, Entry>,
    msisdn: HashMap<String, i64>,
    /// subscriber → msisdn, for everyone.
    numbers: HashMap<i64, String>,
    ranked: Vec<Ranked>,
    ledger: Ledger,
    policy: Policy,
}

/// A phone number with its middle four digits hidden.
#[must_use]
pub fn mask(msisdn: &str) -> String {
    let chars: Vec<char> = msisdn.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars[..3].iter().collect::<String>() + "****" + &chars[n - 4..].iter().collect::<String>()
}

impl DecisionIndex {
    /// Builds the index from a run's inputs and valued choices.
    #[must_use]
    pub fn build(
        inputs: &Inputs,
        library: &Library,
        policy: &Policy,
        choices: &[Vec<Choice>],
    ) -> DecisionIndex {
        let mut index = DecisionIndex {
            as_of: inputs.as_of,
            msisdn: inputs.msisdn.clone(),
            numbers: inputs.msisdn.iter().map(|(k, v)| (*v, k.clone())).collect(),
            ledger: inputs.ledger.clone(),
            policy: policy.clone(),
            ..DecisionIndex::default()
        };
        for (c, cs) in inputs.candidates.iter().zip(choices) {
            let mut offers = Vec::new();
            let mut seen = HashSet::new();
            for ch in cs.iter().filter(|ch| ch.expected_value > 0.0) {
                if offers.len() == RANKED || !seen.insert(ch.offer) {
                    continue;
                }
                let o = &library.offers[ch.offer as usize];
                offers.push(index.ranked.len() as u32);
                index.ranked.push(Ranked {
                    offer_id: o.id.clone(),
                    name_zh: o.name_zh.clone(),
                    name_en: o.name_en.clone(),
                    kind: o.kind.code(),
                    channel: ch.channel,
                    expected_value: crate::round2(ch.expected_value),
                    save_rate: crate::round6(ch.save_rate),
                    cost: crate::round2(ch.cost),
                    talking_point_zh: o.talking_point_zh.clone(),
                    talking_point_en: o.talking_point_en.clone(),
                });
            }
            index.entries.insert(
                c.subscriber_id,
                Entry {
                    msisdn: c.msisdn.clone(),
                    level: c.level,
                    reason: c.reason,
                    p_churn: c.p_churn,
                    clv: c.clv,
                    offers,
                },
            );
        }
        index
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The decision for `key` at `now`, through `channel` (the counter when `None`): ranked
    /// offers, or why none may be made. `None` when the key names no subscriber.
    #[must_use]
    pub fn decide(
        &self,
        key: &str,
        now: NaiveDateTime,
        channel: Option<Channel>,
    ) -> Option<Decision> {
        let id = self.msisdn.get(key).copied().or_else(|| {
            key.parse::<i64>()
                .ok()
                .filter(|id| self.entries.contains_key(id) || self.numbers.contains_key(id))
        })?;
        let Some(e) = self.entries.get(&id) else {
            let msisdn = self.numbers.get(&id).map_or(String::new(), |m| mask(m));
            return Some(Decision {
                subscriber_id: SubscriberId(id),
                msisdn,
                as_of: self.as_of,
                at_risk: false,
                level: None,
                p_churn: None,
                clv: None,
                reason: None,
                reason_zh: None,
                blocked: Some("not at risk in the latest match run: no retention offer".into()),
                offers: Vec::new(),
            });
        };
        let today = now.date();
        let p = &self.policy;
        let blocked = if self.ledger.dnd.contains(&id) && channel.is_some_and(Channel::is_remote) {
            Some("on the do-not-disturb list: no remote contact".to_owned())
        } else if self.ledger.contacts_30d(id, today) >= p.max_contacts_30d {
            Some(format!(
                "already contacted {} time(s) in 30 days",
                p.max_contacts_30d
            ))
        } else if let Some(d) = self.ledger.refused_within(id, today, p.cool_off_days) {
            Some(format!(
                "refused an offer on {d}: cool-off until {}",
                d + chrono::Duration::days(i64::from(p.cool_off_days))
            ))
        } else if channel.is_some_and(Channel::is_remote) && p.is_quiet(now.time()) {
            Some(format!(
                "quiet hours ({}–{})",
                p.quiet_start.format("%H:%M"),
                p.quiet_end.format("%H:%M")
            ))
        } else {
            None
        };
        let offers = if blocked.is_some() {
            Vec::new()
        } else {
            e.offers
                .iter()
                .map(|i| &self.ranked[*i as usize])
                .filter(|r| channel.is_none_or(|c| r.channel == c || !c.is_remote()))
                .map(|r| {
                    let mut r = r.clone();
                    let (code, zh) = crate::REASONS[e.reason];
                    let mut tp = String::new();
                    let _ = write!(tp, "【{zh}】{}", r.talking_point_zh);
                    r.talking_point_zh = tp;
                    r.talking_point_en =
                        format!("[{}] {}", code.replace('_', " "), r.talking_point_en);
                    r
                })
                .collect()
        };
        Some(Decision {
            subscriber_id: SubscriberId(id),
            msisdn: mask(&e.msisdn),
            as_of: self.as_of,
            at_risk: true,
            level: Some(e.level),
            p_churn: Some(crate::round6(e.p_churn)),
            clv: Some(crate::round2(e.clv)),
            reason: Some(crate::REASONS[e.reason].0),
            reason_zh: Some(crate::REASONS[e.reason].1),
            blocked,
            offers,
        })
    }

    /// Records a contact made now, so the next decision honours it.
    pub fn record_contact(&mut self, id: i64, contact: Contact) {
        self.ledger.contacts.entry(id).or_default().push(contact);
    }

    /// Writes the index as `decisions.csv`, `contacts.csv`, `dnd.csv` and `policy.json` in
    /// `dir`, each atomically and in that order: `policy.json` marks the index complete.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e| Error::csv("writing decisions", e);
        w.write_record([
            "subscriber_id",
            "msisdn",
            "level",
            "reason",
            "p_churn",
            "clv",
            "rank",
            "offer_id",
            "name_zh",
            "name_en",
            "kind",
            "channel",
            "expected_value",
            "save_rate",
            "cost",
            "talking_point_zh",
            "talking_point_en",
        ])
        .map_err(csv_err)?;
        let mut ids: Vec<&i64> = self.entries.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.entries[id];
            let head = [
                id.to_string(),
                e.msisdn.clone(),
                e.level.code().to_owned(),
                crate::REASONS[e.reason].0.to_owned(),
                e.p_churn.to_string(),
                e.clv.to_string(),
            ];
            if e.offers.is_empty() {
                let mut rec: Vec<String> = head.to_vec();
                rec.extend(std::iter::repeat_n(String::new(), 11));
                w.write_record(&rec).map_err(csv_err)?;
            }
            for (rank, i) in e.offers.iter().enumerate() {
                let r = &self.ranked[*i as usize];
                let mut rec: Vec<String> = head.to_vec();
                rec.extend([
                    (rank + 1).to_string(),
                    r.offer_id.clone(),
                    r.name_zh.clone(),
                    r.name_en.clone(),
                    r.kind.to_owned(),
                    r.channel.code().to_owned(),
                    r.expected_value.to_string(),
                    r.save_rate.to_string(),
                    r.cost.to_string(),
                    r.talking_point_zh.clone(),
                    r.talking_point_en.clone(),
                ]);
                w.write_record(&rec).map_err(csv_err)?;
            }
        }
        let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
        retain_data::write_atomically(&dir.join("decisions.csv"), &bytes)?;

        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["subscriber_id", "date", "offer_id", "channel", "refused"])
            .map_err(csv_err)?;
        let horizon = 400;
        let mut ids: Vec<&i64> = self.ledger.contacts.keys().collect();
        ids.sort();
        for id in ids {
            for c in &self.ledger.contacts[id] {
                if (self.as_of - c.date).num_days() <= horizon {
                    w.write_record([
                        id.to_string(),
                        c.date.to_string(),
                        c.offer_id.clone(),
                        c.channel.clone(),
                        c.refused.to_string(),
                    ])
                    .map_err(csv_err)?;
                }
            }
        }
        let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
        retain_data::write_atomically(&dir.join("contacts.csv"), &bytes)?;

        let mut dnd: Vec<&i64> = self.ledger.dnd.iter().collect();
        dnd.sort();
        let mut text = String::from("subscriber_id\n");
        for id in dnd {
            let _ = writeln!(text, "{id}");
        }
        retain_data::write_atomically(&dir.join("dnd.csv"), text.as_bytes())?;
        let meta = serde_json::json!({ "as_of": self.as_of, "policy": self.policy });
        retain_data::write_atomically(
            &dir.join("policy.json"),
            serde_json::to_string_pretty(&meta)
                .map_err(|e| Error::Internal(e.to_string()))?
                .as_bytes(),
        )?;
        Ok(())
    }

    /// Loads an index written by [`DecisionIndex::save`], with every subscriber's msisdn from
    /// `msisdn` (so subscribers not at risk resolve too).
    pub fn load(dir: &Path, msisdn: HashMap<String, i64>) -> Result<DecisionIndex> {
        let meta_file = dir.join("policy.json");
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&meta_file)
                .map_err(|e| Error::io(format!("reading {}", meta_file.display()), e))?,
        )
        .map_err(|e| Error::Internal(format!("{}: {e}", meta_file.display())))?;
        let policy: Policy = serde_json::from_value(meta["policy"].clone())
            .map_err(|e| Error::Internal(format!("{}: {e}", meta_file.display())))?;
        let as_of = meta["as_of"]
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .ok_or_else(|| Error::Internal(format!("{}: no as_of", meta_file.display())))?;
        let numbers = msisdn.iter().map(|(k, v)| (*v, k.clone())).collect();
        let mut index = DecisionIndex {
            as_of,
            msisdn,
            numbers,
            policy,
            ..DecisionIndex::default()
        };
        let file = dir.join("decisions.csv");
        let mut r =
            csv::Reader::from_path(&file).map_err(|e| Error::csv(file.display().to_string(), e))?;
        for rec in r.records() {
            let rec = rec.map_err(|e| Error::csv(file.display().to_string(), e))?;
            let get = |i: usize| rec.get(i).unwrap_or("");
            let Ok(id) = get(0).parse::<i64>() else {
                continue;
            };
            let entry = index.entries.entry(id).or_insert_with(|| Entry {
                msisdn: get(1).to_owned(),
                level: Level::from_code(get(2)).unwrap_or(Level::Blue),
                reason: crate::reason::reason_index(get(3)).unwrap_or(crate::reason::UNKNOWN),
                p_churn: get(4).parse().unwrap_or(0.0),
                clv: get(5).parse().unwrap_or(0.0),
                offers: Vec::new(),
            });
            if get(7).is_empty() {
                continue;
            }
            entry.offers.push(index.ranked.len() as u32);
            index.ranked.push(Ranked {
                offer_id: get(7).to_owned(),
                name_zh: get(8).to_owned(),
                name_en: get(9).to_owned(),
                kind: crate::library::Kind::from_code(get(10))
                    .map_or("", crate::library::Kind::code),
                channel: Channel::from_code(get(11)).unwrap_or(Channel::Sms),
                expected_value: get(12).parse().unwrap_or(0.0),
                save_rate: get(13).parse().unwrap_or(0.0),
                cost: get(14).parse().unwrap_or(0.0),
                talking_point_zh: get(15).to_owned(),
                talking_point_en: get(16).to_owned(),
            });
        }
        let file = dir.join("contacts.csv");
        let mut r =
            csv::Reader::from_path(&file).map_err(|e| Error::csv(file.display().to_string(), e))?;
        for rec in r.records() {
            let rec = rec.map_err(|e| Error::csv(file.display().to_string(), e))?;
            let (Some(id), Some(date)) = (
                rec.get(0).and_then(|v| v.parse::<i64>().ok()),
                rec.get(1)
                    .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()),
            ) else {
                continue;
            };
            index.ledger.contacts.entry(id).or_default().push(Contact {
                date,
                offer_id: rec.get(2).unwrap_or("").to_owned(),
                channel: rec.get(3).unwrap_or("").to_owned(),
                refused: rec.get(4) == Some("true"),
            });
        }
        let all: HashMap<String, i64> = HashMap::new();
        index.ledger.dnd = crate::inputs::read_dnd(&dir.join("dnd.csv"), &all)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_middle_digits() {
        assert_eq!(mask("13812345678"), "138****5678");
        assert_eq!(mask("123"), "***");
    }
}
