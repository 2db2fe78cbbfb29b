//! Where each subscriber sits — RFM, value, lifecycle stage, cluster and scenario groups — and
//! the segments table that holds it.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use retain_data::SubscriberId;

use super::Placement;
use super::profiles::ClusterLabel;
use super::rfm::{Rfm, percentile};
use super::value::Values;
use crate::config::SegmentConfig;
use crate::error::{Error, Result};
use crate::features::Behaviour;

/// Places everyone: the active base by their scores, the departed as churned.
pub(super) fn place(
    people: &[Behaviour],
    rfm: &Rfm,
    values: &Values,
    clusters: &[usize],
    config: &SegmentConfig,
) -> Vec<Placement> {
    let alive: Vec<&Behaviour> = people.iter().filter(|b| b.alive).collect();
    let voice_median = percentile(&alive.iter().map(|b| b.voice_3m).collect::<Vec<_>>(), 0.5);
    let data_median = percentile(&alive.iter().map(|b| b.data_3m).collect::<Vec<_>>(), 0.5);
    let data_p75 = percentile(&alive.iter().map(|b| b.data_3m).collect::<Vec<_>>(), 0.75);
    let lc = &config.lifecycle;
    let mut placements = Vec::with_capacity(people.len());
    let mut alive_index = 0;
    for b in people {
        if !b.alive {
            placements.push(Placement {
                subscriber_id: SubscriberId(b.subscriber_id),
                rfm: None,
                rfm_group: None,
                clv: None,
                value_tier: None,
                midhigh: false,
                lifecycle_stage: "churned",
                cluster: None,
                scenarios: Vec::new(),
            });
            continue;
        }
        let i = alive_index;
        alive_index += 1;
        let declining = b
            .contract_months_left
            .is_some_and(|m| m <= f64::from(lc.decline_contract_months))
            || (b.fee_prev_3m > 0.0 && b.arpu_3m <= (1.0 - lc.decline_fee_drop) * b.fee_prev_3m)
            || b.silent_months_3m >= f64::from(lc.decline_silent_months);
        let stage = if b.tenure_months < f64::from(lc.onboarding_months) {
            "onboarding"
        } else if declining {
            "decline"
        } else if b.tenure_months < f64::from(lc.growth_months) {
            "growth"
        } else {
            "mature"
        };
        let mut scenarios = Vec::new();
        if b.age >= 60.0 && b.voice_3m >= voice_median && b.data_3m <= data_median {
            scenarios.push("voice_dominant_senior");
        }
        if b.age < 30.0 && b.data_3m >= data_p75 {
            scenarios.push("data_dominant_young");
        }
        if b.family_size >= 2.0 {
            scenarios.push("family_convergence");
        }
        if b.is_group_member {
            scenarios.push(if b.group_size < 10.0 {
                "group_member_small"
            } else if b.group_size < 50.0 {
                "group_member_medium"
            } else {
                "group_member_large"
            });
        }
        placements.push(Placement {
            subscriber_id: SubscriberId(b.subscriber_id),
            rfm: Some((rfm.r[i], rfm.f[i], rfm.m[i])),
            rfm_group: Some(rfm.group(i, b, &config.rfm)),
            clv: Some(values.clv[i]),
            value_tier: Some(values.tier[i]),
            midhigh: b.arpu_3m >= values.midhigh_cut,
            lifecycle_stage: stage,
            cluster: Some(clusters[i]),
            scenarios,
        });
    }
    placements
}

/// Writes the segments table (one row per subscriber, with the clusters' names) atomically.
pub(super) fn write_placements(
    path: &Path,
    placements: &[Placement],
    names: &[ClusterLabel],
) -> Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscriber_id", DataType::Int64, false),
        Field::new("rfm_r", DataType::Int64, true),
        Field::new("rfm_f", DataType::Int64, true),
        Field::new("rfm_m", DataType::Int64, true),
        Field::new("rfm_group", DataType::Utf8, true),
        Field::new("clv", DataType::Float64, true),
        Field::new("value_tier", DataType::Utf8, true),
        Field::new("midhigh", DataType::Boolean, false),
        Field::new("lifecycle_stage", DataType::Utf8, false),
        Field::new("cluster", DataType::Int64, true),
        Field::new("cluster_name_zh", DataType::Utf8, true),
        Field::new("cluster_name_en", DataType::Utf8, true),
        Field::new("scenarios", DataType::Utf8, false),
    ]));
    let name = |p: &Placement, zh: bool| {
        p.cluster.map(|c| {
            if zh {
                names[c].name_zh.clone()
            } else {
                names[c].name_en.clone()
            }
        })
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                placements.iter().map(|p| p.subscriber_id.get()),
            )),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.0)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.1)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.2)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm_group)
                    .collect::<StringArray>(),
            ),
            Arc::new(placements.iter().map(|p| p.clv).collect::<Float64Array>()),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.value_tier)
                    .collect::<StringArray>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| Some(p.midhigh))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(StringArray::from_iter_values(
                placements.iter().map(|p| p.lifecycle_stage),
            )),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.cluster.map(|c| c as i64))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| name(p, true))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| name(p, false))
                    .collect::<StringArray>(),
            ),
            Arc::new(StringArray::from_iter_values(
                placements.iter().map(|p| p.scenarios.join(" ")),
            )),
        ],
    )
    .map_err(|e| Error::Internal(format!("building the segment table: {e}")))?;
    let tmp = path.with_extension("parquet.tmp");
    let mut writer = retain_data::TableWriter::create(&tmp, schema)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
