-- Marketing analysis (`marketing`): the `leads_summary` (with the previous period it is
-- compared with), `by_source` (with totals) and `source_share` blocks, written from the definitions of each number over the facts of common.sql. A
-- new lead is open at `as_of` in the first lead status; a sale is a won deal from a lead.
-- uses: common.sql
-- uses: common.sql previous

-- setup (each period)
CREATE OR REPLACE TEMP TABLE ml{p} AS
SELECT *, is_open AND stage_sort = (SELECT min(sort) FROM stages WHERE entity = 'lead') AS is_new,
       closed_at::DATE - created_at::DATE AS processing_days
FROM lf{p};

CREATE OR REPLACE TEMP TABLE md{p} AS
SELECT *, semantic = 'success' AND closed_in_period AND lead_id IS NOT NULL AS is_lead_sale
FROM df{p};

-- setup
CREATE OR REPLACE TEMP TABLE lead_by_source AS
SELECT source_id, source,
       count(*) FILTER (WHERE created_in_period) AS received,
       count(*) FILTER (WHERE closed_in_period) AS closed,
       count(*) FILTER (WHERE semantic = 'success' AND closed_in_period) AS quality,
       count(*) FILTER (WHERE semantic = 'failure' AND closed_in_period) AS non_quality,
       count(*) FILTER (WHERE created_in_period AND is_new) AS new,
       count(*) FILTER (WHERE created_in_period AND is_open AND NOT is_new) AS in_work
FROM ml GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE sales_by_source AS
SELECT source_id, source,
       count(*) FILTER (WHERE is_lead_sale) AS sales_count,
       coalesce(sum(amount) FILTER (WHERE is_lead_sale), 0) AS sales_sum
FROM md GROUP BY ALL;

-- block: leads_summary (each period)
SELECT count(*) FILTER (WHERE created_in_period) AS received,
       count(*) FILTER (WHERE closed_in_period) AS closed,
       count(*) FILTER (WHERE semantic = 'success' AND closed_in_period) AS quality,
       count(*) FILTER (WHERE semantic = 'failure' AND closed_in_period) AS non_quality,
       100.0 * count(*) FILTER (WHERE semantic = 'success' AND closed_in_period)
             / nullif(count(*) FILTER (WHERE closed_in_period), 0) AS conversion_pct,
       count(*) FILTER (WHERE created_in_period AND is_new) AS new,
       count(*) FILTER (WHERE created_in_period AND is_open AND NOT is_new) AS in_work,
       avg(processing_days) FILTER (WHERE closed_in_period) AS avg_processing_days,
       (SELECT count(*) FILTER (WHERE is_lead_sale) FROM md{p}) AS sales_count,
       (SELECT coalesce(sum(amount) FILTER (WHERE is_lead_sale), 0) FROM md{p}) AS sales_sum
FROM ml{p};

-- block: by_source
SELECT k.source_id, k.source, coalesce(l.received, 0) AS received,
       coalesce(l.non_quality, 0) AS non_quality, coalesce(l.new, 0) AS new,
       coalesce(l.in_work, 0) AS in_work,
       100.0 * l.quality / nullif(l.closed, 0) AS conversion_pct,
       coalesce(s.sales_count, 0) AS sales_count, coalesce(s.sales_sum, 0) AS sales_sum
FROM (SELECT source_id, source FROM lead_by_source
      UNION SELECT source_id, source FROM sales_by_source) k
LEFT JOIN lead_by_source l ON l.source_id IS NOT DISTINCT FROM k.source_id
                          AND l.source IS NOT DISTINCT FROM k.source
LEFT JOIN sales_by_source s ON s.source_id IS NOT DISTINCT FROM k.source_id
                           AND s.source IS NOT DISTINCT FROM k.source
ORDER BY received DESC, k.source, k.source_id;

-- block: by_source.totals
SELECT sum(received) AS received, sum(non_quality) AS non_quality, sum(new) AS new,
       sum(in_work) AS in_work, 100.0 * sum(quality) / nullif(sum(closed), 0) AS conversion_pct,
       (SELECT sum(sales_count) FROM sales_by_source) AS sales_count,
       (SELECT sum(sales_sum) FROM sales_by_source) AS sales_sum
FROM lead_by_source;

-- block: source_share
SELECT source_id, source, received,
       100.0 * received / nullif(sum(received) OVER (), 0) AS share,
       quality, non_quality, new, in_work
FROM lead_by_source
ORDER BY received DESC, source, source_id;
