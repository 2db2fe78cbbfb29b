//! The tag library (标签库): named conditions over features, segments and warnings, recomputed
//! on every run, and target groups selected by tag expressions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use retain_data::Workspace;
use retain_features::conditions::{feature_ctes, register_outputs};
use retain_features::expr::{Compiler, ExprError, Source, line_column, parse, toml_offset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The tags shipped with retain.
pub const DEFAULT_TAGS: &str = include_str!("../tags/default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsFile {
    #[serde(rename = "tag")]
    tags: Vec<TagFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagFile {
    id: String,
    name_zh: String,
    name_en: String,
    when: toml::Spanned<String>,
}

/// A compiled tag.
#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub when: String,
    #[serde(skip)]
    sql: String,
}

/// A compiled tag library.
#[derive(Debug)]
pub struct TagLibrary {
    pub source: PathBuf,
    pub tags: Vec<Tag>,
    compiler: Compiler,
}

impl TagLibrary {
    /// Compiles a tag file; errors name the tag and the line and column.
    pub fn parse(text: &str, path: &Path) -> Result<TagLibrary> {
        let bad = |tag: &str, offset: usize, message: &str| {
            let (line, column) = line_column(text, offset);
            Error::Config(format!(
                "{}:{line}:{column}: tag {tag}: {message}",
                path.display()
            ))
        };
        let file: TagsFile = toml::from_str(text)
            .map_err(|e| bad("(file)", e.span().map_or(0, |s| s.start), e.message()))?;
        let mut compiler = Compiler::default();
        let mut tags = Vec::new();
        for t in &file.tags {
            if t.id.is_empty() || !t.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(
                    &t.id,
                    t.when.span().start,
                    "a tag id is letters, digits and _",
                ));
            }
            if tags.iter().any(|x: &Tag| x.id == t.id) {
                return Err(bad(&t.id, t.when.span().start, "this tag id is used twice"));
            }
            let start = t.when.span().start;
            let (sql, _) = parse(t.when.get_ref())
                .and_then(|e| compiler.condition(&e))
                .map_err(|ExprError { offset, message }| {
                    bad(&t.id, toml_offset(text, start, offset), &message)
                })?;
            if compiler.sources.iter().any(|s| matches!(s, Source::Tag(_))) {
                return Err(bad(
                    &t.id,
                    t.when.span().start,
                    "a tag cannot be defined by other tags",
                ));
            }
            tags.push(Tag {
                id: t.id.clone(),
                name_zh: t.name_zh.clone(),
                name_en: t.name_en.clone(),
                when: t.when.get_ref().clone(),
                sql,
            });
        }
        Ok(TagLibrary {
            source: path.to_path_buf(),
            tags,
            compiler,
        })
    }

    /// `<workspace>/tags.toml` when present, else the shipped library.
    pub fn for_workspace(workspace: &Workspace) -> Result<TagLibrary> {
        let path = workspace.root().join("tags.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            Self::parse(&text, &path)
        } else {
            Ok(Self::parse(DEFAULT_TAGS, Path::new("<default tags>"))
                .expect("the default tags compile (tested)"))
        }
    }

    /// Recomputes every tag's members as of `as_of` and writes `<root>/segments/tags.parquet`
    /// (one boolean column per tag). Returns the member count of each tag. A large operator's
    /// tags are computed one subscriber partition at a time, as its features are.
    pub async fn compute(
        &self,
        ctx: &SessionContext,
        workspace: &Workspace,
        as_of: NaiveDate,
    ) -> Result<BTreeMap<String, u64>> {
        let parts = retain_features::feature_partitions(workspace)?;
        self.compute_in_partitions(ctx, workspace, as_of, parts)
            .await
    }

    /// [`TagLibrary::compute`] in `parts` subscriber partitions (`ctx` when `parts` is 1).
    pub async fn compute_in_partitions(
        &self,
        ctx: &SessionContext,
        workspace: &Workspace,
        as_of: NaiveDate,
        parts: u32,
    ) -> Result<BTreeMap<String, u64>> {
        let parts = parts.max(1);
        let columns: Vec<String> = self
            .tags
            .iter()
            .map(|t| format!("COALESCE({}, false) AS \"{}\"", t.sql, t.id))
            .collect();
        let sql = format!(
            "WITH {} SELECT subscriber_id, {} FROM f ORDER BY subscriber_id",
            feature_ctes(&self.compiler, as_of),
            columns.join(", ")
        );
        let file = retain_features::outputs::tags_file(workspace);
        let dir = file.parent().unwrap_or(workspace.root());
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let tmp = dir.join("tags.parquet.tmp");
        if retain_features::engine::cluster().is_some() {
            register_outputs(ctx, workspace, &self.compiler).await?;
            let counts = self.write_on_cluster(ctx, &sql, &tmp).await;
            if counts.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            let counts = counts?;
            std::fs::rename(&tmp, &file)
                .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
            let _ = ctx.deregister_table("tags");
            return Ok(counts);
        }
        let mut counts: BTreeMap<String, u64> =
            self.tags.iter().map(|t| (t.id.clone(), 0)).collect();
        let mut writer = None;
        for part in 0..parts {
            let session = retain_features::session_for(ctx, workspace, part, parts).await?;
            register_outputs(&session, workspace, &self.compiler).await?;
            let batches = retain_features::frame::query(&session, &sql, "the tags").await?;
            // Partitions come in subscriber order, so the file is sorted as one query's was.
            for b in &batches {
                let w = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(retain_data::TableWriter::create(&tmp, b.schema())?),
                };
                w.write(b)?;
                for (i, t) in self.tags.iter().enumerate() {
                    let column = b.column(i + 1).as_boolean();
                    *counts.get_mut(&t.id).expect("every tag counted") +=
                        column.true_count() as u64;
                }
            }
        }
        if let Some(writer) = writer {
            writer.close()?;
            std::fs::rename(&tmp, &file)
                .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        }
        // A later query in this session must see the new memberships.
        let _ = ctx.deregister_table("tags");
        Ok(counts)
    }
}

impl TagLibrary {
    /// The memberships of `sql` written to `tmp` by a cluster's executor (one plan, sorted by
    /// subscriber as on one machine), then counted there: no member row passes through this
    /// process.
    async fn write_on_cluster(
        &self,
        ctx: &SessionContext,
        sql: &str,
        tmp: &Path,
    ) -> Result<BTreeMap<String, u64>> {
        let engine = |what: &'static str| move |e| Error::engine(what, e);
        ctx.sql(sql)
            .await
            .map_err(engine("planning the tags"))?
            .write_parquet(
                &tmp.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .map_err(engine("writing the tags"))?;
        let sums: Vec<String> = self
            .tags
            .iter()
            .map(|t| {
                format!(
                    "CAST(COUNT(*) FILTER (WHERE \"{0}\") AS BIGINT) AS \"{0}\"",
                    t.id
                )
            })
            .collect();
        let table = "written_tags";
        let _ = ctx.deregister_table(table);
        // Named for what it is only once renamed into place.
        let options = ParquetReadOptions::default().file_extension(".tmp");
        ctx.register_parquet(table, &*tmp.to_string_lossy(), options)
            .await
            .map_err(engine("reading the tags written"))?;
        let counted = ctx
            .sql(&format!("SELECT {} FROM {table}", sums.join(", ")))
            .await
            .map_err(engine("counting the tags"))?
            .collect()
            .await
            .map_err(engine("counting the tags"));
        let _ = ctx.deregister_table(table);
        let counted = counted?;
        let row = counted.iter().find(|b| b.num_rows() > 0);
        Ok(self
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let n = row.map_or(0, |b| b.column(i).as_primitive::<Int64Type>().value(0));
                (t.id.clone(), u64::try_from(n).unwrap_or(0))
            })
            .collect())
    }
}

/// Checks a target expression against the tag library without reading any data: the error
/// [`select_by_tags`] would give for it, if any.
pub fn check_target_expression(library: &TagLibrary, expression: &str) -> Result<()> {
    target_sql(library, expression).map(|_| ())
}

/// The SQL of a target expression over the `tags` table's columns.
fn target_sql(library: &TagLibrary, expression: &str) -> Result<String> {
    let mut compiler = Compiler {
        booleans: library.tags.iter().map(|t| t.id.clone()).collect(),
        ..Compiler::default()
    };
    let (sql, _) = parse(expression)
        .and_then(|e| compiler.condition(&e))
        .map_err(|e| Error::BadRequest(format!("target expression, {}", e.describe(expression))))?;
    if !compiler.sources.is_empty() {
        return Err(Error::BadRequest(
            "a target expression combines tag ids with and, or, not".into(),
        ));
    }
    Ok(sql)
}

/// The subscribers whose tags satisfy `expression`, for example
/// `contract_expiring and not enterprise_member`, from the last computed tags.
pub async fn select_by_tags(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &TagLibrary,
    expression: &str,
) -> Result<Vec<i64>> {
    select(ctx, workspace, library, expression, false).await
}

/// [`select_by_tags`] widened to whole calling circles: every subscriber still on the network
/// who shares a circle (the last `retain segment`'s) with one the expression selects. A circle
/// leaves together, so it is kept together: one contact plan for the friends.
pub async fn select_whole_circles(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &TagLibrary,
    expression: &str,
) -> Result<Vec<i64>> {
    select(ctx, workspace, library, expression, true).await
}

async fn select(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &TagLibrary,
    expression: &str,
    whole_circles: bool,
) -> Result<Vec<i64>> {
    let sql = target_sql(library, expression)?;
    let file = retain_features::outputs::tags_file(workspace);
    if !file.exists() {
        return Err(Error::BadRequest(
            "no tags have been computed yet: run `retain segment` first".into(),
        ));
    }
    if !ctx.table_exist("tags").unwrap_or(false) {
        ctx.register_parquet(
            "tags",
            file.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| Error::engine("reading the tags", e))?;
    }
    let query = if whole_circles {
        let circles = crate::network::circles_file(workspace);
        if !circles.exists() {
            return Err(Error::BadRequest(
                "no calling circles have been found yet: run `retain segment` first".into(),
            ));
        }
        let table = "target_circles";
        let _ = ctx.deregister_table(table);
        ctx.register_parquet(
            table,
            circles.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| Error::engine("reading the circles", e))?;
        // The tags' columns are the tag ids: the condition is read in a query of `tags` alone.
        format!(
            "WITH chosen AS (SELECT subscriber_id FROM tags WHERE COALESCE({sql}, false)),
                  their AS (SELECT DISTINCT c.circle FROM {table} c
                            JOIN chosen ON chosen.subscriber_id = c.subscriber_id),
                  friends AS (SELECT c.subscriber_id FROM {table} c
                              JOIN their ON their.circle = c.circle)
             SELECT t.subscriber_id FROM tags t
             WHERE t.subscriber_id IN (SELECT subscriber_id FROM chosen)
                OR t.subscriber_id IN (SELECT subscriber_id FROM friends)
             ORDER BY t.subscriber_id"
        )
    } else {
        format!(
            "SELECT subscriber_id FROM tags WHERE COALESCE({sql}, false) ORDER BY subscriber_id"
        )
    };
    let batches = retain_features::frame::query(ctx, &query, "the target group").await?;
    Ok(batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_primitive::<Int64Type>();
            (0..b.num_rows())
                .filter(|r| !a.is_null(*r))
                .map(|r| a.value(r))
                .collect::<Vec<_>>()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tags_compile() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let lib = TagLibrary::for_workspace(&ws).unwrap();
        assert!(lib.tags.len() >= 10);
    }

    #[test]
    fn errors_name_the_tag_and_position() {
        let text =
            "[[tag]]\nid = \"x\"\nname_zh = \"x\"\nname_en = \"x\"\nwhen = \"value_tier = \"\n";
        let err = TagLibrary::parse(text, Path::new("tags.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tags.toml:5:") && err.contains("tag x"),
            "{err}"
        );
        let text = "[[tag]]\nid = \"x\"\nname_zh = \"x\"\nname_en = \"x\"\nwhen = \"tag('y')\"\n";
        let err = TagLibrary::parse(text, Path::new("tags.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be defined by other tags"), "{err}");
    }
}
