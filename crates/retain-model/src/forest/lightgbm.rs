//! LightGBM's text format, read and written: the registry saves the trees in it, and LightGBM
//! itself reads what retain writes.

use super::{Forest, Missing, PartNode, TreeParts};
use crate::error::{Error, Result};

impl Forest {
    /// The trees of a model in LightGBM's text format, as the registry keeps them (and as
    /// LightGBM writes them). Models with categorical splits or linear leaves are refused;
    /// retain trains neither.
    pub fn from_lightgbm(text: &str) -> Result<Forest> {
        let bad = |what: String| Error::Model(format!("reading the LightGBM model: {what}"));
        let mut forest = Forest::empty();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(max) = line.strip_prefix("max_feature_idx=") {
                let max: usize = max
                    .trim()
                    .parse()
                    .map_err(|e| bad(format!("{line}: {e}")))?;
                forest.features = max + 1;
            }
            if line == "end of trees" {
                break;
            }
            if !line.starts_with("Tree=") {
                continue;
            }
            let mut fields = std::collections::HashMap::new();
            while let Some(next) = lines.peek() {
                if next.is_empty() || next.starts_with("Tree=") || *next == "end of trees" {
                    break;
                }
                if let Some((key, value)) = next.split_once('=') {
                    fields.insert(key, value);
                }
                lines.next();
            }
            let parts = read_tree(line, &fields).map_err(bad)?;
            forest.push_parts(line, &parts).map_err(bad)?;
        }
        forest.finish().map_err(bad)
    }

    /// The forest in LightGBM's text format, over features named `names`: what the registry
    /// saves, and what LightGBM itself reads.
    #[must_use]
    pub fn to_lightgbm(&self, names: &[String]) -> String {
        use std::fmt::Write as _;
        let d = self.features.max(names.len()).max(1);
        let names: Vec<String> = (0..d)
            .map(|j| {
                names.get(j).map_or_else(
                    || format!("Column_{j}"),
                    |n| n.replace(char::is_whitespace, "_"),
                )
            })
            .collect();
        let mut text = format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
             max_feature_idx={}\nobjective=binary sigmoid:1\nfeature_names={}\n\
             feature_infos={}\n\n",
            d - 1,
            names.join(" "),
            vec!["none"; d].join(" ")
        );
        let join = |values: &mut dyn Iterator<Item = String>| values.collect::<Vec<_>>().join(" ");
        let counts = self.counts();
        let mut leaf_first = 0;
        for t in 0..self.roots.len() {
            let (root, size) = self.tree_nodes(t);
            let leaves = size + 1;
            let first = usize::try_from(root).unwrap_or(0);
            let nodes = if root < 0 {
                &self.nodes[..0]
            } else {
                &self.nodes[first..first + size]
            };
            // Children as the tree's own: nodes from its root, leaves from its first.
            let local = |c: i32| -> String {
                if c >= 0 {
                    (c as usize - first).to_string()
                } else {
                    (!((!c) as usize - leaf_first) as i64).to_string()
                }
            };
            let _ = writeln!(text, "Tree={t}\nnum_leaves={leaves}\nnum_cat=0");
            if size > 0 {
                let _ = writeln!(
                    text,
                    "split_feature={}\nsplit_gain={}\nthreshold={}\ndecision_type={}\n\
                     left_child={}\nright_child={}",
                    join(&mut nodes.iter().map(|n| n.feature.to_string())),
                    join(&mut self.gains[first..first + size].iter().map(|g| number(*g))),
                    join(&mut nodes.iter().map(|n| number(n.threshold))),
                    join(&mut nodes.iter().map(|n| {
                        let missing = match n.missing {
                            Missing::None => 0,
                            Missing::Zero => 1,
                            Missing::Nan => 2,
                        };
                        (u8::from(n.default_left) * 2 + missing * 4).to_string()
                    })),
                    join(&mut nodes.iter().map(|n| local(n.left))),
                    join(&mut nodes.iter().map(|n| local(n.right))),
                );
            }
            let _ = writeln!(
                text,
                "leaf_value={}",
                join(
                    &mut self.leaves[leaf_first..leaf_first + leaves]
                        .iter()
                        .map(|v| number(*v))
                )
            );
            if let Some((node_counts, leaf_counts)) = counts {
                let _ = writeln!(
                    text,
                    "leaf_count={}",
                    join(
                        &mut leaf_counts[leaf_first..leaf_first + leaves]
                            .iter()
                            .map(ToString::to_string)
                    )
                );
                if size > 0 {
                    let _ = writeln!(
                        text,
                        "internal_count={}",
                        join(
                            &mut node_counts[first..first + size]
                                .iter()
                                .map(ToString::to_string)
                        )
                    );
                }
            }
            let _ = write!(text, "is_linear=0\nshrinkage=1\n\n\n");
            leaf_first += leaves;
        }
        text.push_str("end of trees\n");
        text
    }
}

/// A tree of a model in LightGBM's text format, from its fields.
fn read_tree(
    name: &str,
    fields: &std::collections::HashMap<&str, &str>,
) -> std::result::Result<TreeParts, String> {
    let get = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("{name} has no {key}"))
    };
    if fields.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(format!("{name} has linear leaves"));
    }
    let leaves: Vec<f64> = list(name, "leaf_value", get("leaf_value")?)?;
    let num_leaves: usize = get("num_leaves")?
        .trim()
        .parse()
        .map_err(|e| format!("{name} num_leaves: {e}"))?;
    if leaves.len() != num_leaves || num_leaves == 0 {
        return Err(format!("{name} has {} leaf values", leaves.len()));
    }
    let leaf_counts = match fields.get("leaf_count") {
        Some(counts) => list::<f64>(name, "leaf_count", counts)?,
        None => Vec::new(),
    };
    if num_leaves == 1 {
        return Ok(TreeParts {
            nodes: Vec::new(),
            leaves,
            leaf_counts,
        });
    }
    let internal = num_leaves - 1;
    let features: Vec<u32> = list(name, "split_feature", get("split_feature")?)?;
    let thresholds: Vec<f64> = list(name, "threshold", get("threshold")?)?;
    let decisions: Vec<u8> = list(name, "decision_type", get("decision_type")?)?;
    let lefts: Vec<i32> = list(name, "left_child", get("left_child")?)?;
    let rights: Vec<i32> = list(name, "right_child", get("right_child")?)?;
    let gains: Vec<f64> = match fields.get("split_gain") {
        Some(g) => list(name, "split_gain", g)?,
        None => vec![0.0; internal],
    };
    let counts: Vec<f64> = match fields.get("internal_count") {
        Some(c) => list(name, "internal_count", c)?,
        None => vec![f64::NAN; internal],
    };
    if [
        features.len(),
        thresholds.len(),
        decisions.len(),
        lefts.len(),
        rights.len(),
        gains.len(),
        counts.len(),
    ]
    .iter()
    .any(|n| *n != internal)
    {
        return Err(format!("{name} has arrays of the wrong length"));
    }
    let mut nodes = Vec::with_capacity(internal);
    for i in 0..internal {
        let decision = decisions[i];
        if decision & 1 != 0 {
            return Err(format!("{name} has a categorical split"));
        }
        // LightGBM's missing types: 0 none (NaN is read as 0), 1 zero, 2 NaN.
        let missing = match (decision >> 2) & 3 {
            0 => Missing::None,
            1 => Missing::Zero,
            _ => Missing::Nan,
        };
        nodes.push(PartNode {
            feature: features[i],
            threshold: thresholds[i],
            missing,
            default_left: decision & 2 != 0,
            left: lefts[i],
            right: rights[i],
            gain: gains[i],
            count: counts[i],
        });
    }
    Ok(TreeParts {
        nodes,
        leaves,
        leaf_counts,
    })
}

/// A number as the text format holds it: the shortest text that reads back the same
/// (`inf` as C's `strtod` reads it).
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{v:e}")
    }
}

/// A field of a tree: values separated by spaces.
fn list<T: std::str::FromStr>(name: &str, key: &str, text: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    text.split_whitespace()
        .map(|v| v.parse().map_err(|e| format!("{name} {key} {v:?}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_that_is_not_a_number_is_refused() {
        let text = "max_feature_idx=0\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=nan\n\
                    decision_type=8\nleft_child=-1\nright_child=-2\nleaf_value=0 1\n\nend of trees\n";
        let error = Forest::from_lightgbm(text).unwrap_err().to_string();
        assert!(error.contains("not a number"), "{error}");
    }

    #[test]
    fn categorical_splits_are_refused() {
        let text = "max_feature_idx=0\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=0\n\
                    decision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=0 1\n\nend of trees\n";
        let error = Forest::from_lightgbm(text).unwrap_err().to_string();
        assert!(error.contains("categorical"), "{error}");
    }
}
