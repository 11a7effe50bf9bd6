-- Clients (`clients`): the `by_client` and `at_risk` blocks, written from the definitions of each number.
-- A CRM company matches every 1C counterparty with the same INN (digits only); posted 1C
-- sales count by document date in the client's zone; the previous period of a whole
-- month is the month before. Placeholders as in common.sql, plus {prev_period_start}
-- {prev_period_end} {prev_as_of_end}.
-- uses: common.sql

-- setup
CREATE OR REPLACE TEMP TABLE company_inns AS
SELECT id AS company_id, title AS company,
       nullif(regexp_replace(coalesce(inn, ''), '[^0-9]', '', 'g'), '') AS inn_digits
FROM companies;

CREATE OR REPLACE TEMP TABLE turnover_rows AS
SELECT s.amount, s.volume, s.date, ci.company_id
FROM onec_sales s
LEFT JOIN onec_counterparties c ON c.id = s.counterparty_id
LEFT JOIN company_inns ci
       ON ci.inn_digits = nullif(regexp_replace(coalesce(c.inn, ''), '[^0-9]', '', 'g'), '')
WHERE s.posted;

CREATE OR REPLACE TEMP TABLE turnover AS
SELECT company_id,
       coalesce(sum(amount) FILTER (WHERE date >= {period_start} AND date < {period_end} AND date < {as_of_end}), 0) AS turnover,
       count(*) FILTER (WHERE date >= {period_start} AND date < {period_end} AND date < {as_of_end}) AS orders,
       coalesce(sum(volume) FILTER (WHERE date >= {period_start} AND date < {period_end} AND date < {as_of_end}), 0) AS volume,
       coalesce(sum(amount) FILTER (WHERE date >= {prev_period_start} AND date < {prev_period_end} AND date < {prev_as_of_end}), 0) AS turnover_prev
FROM turnover_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE plan_by_company AS
SELECT company_id,
       coalesce(sum(plan_amount * CASE WHEN overlap <= 0 THEN 0.0 ELSE overlap * 1.0 / month_days END), 0) AS plan
FROM (SELECT *, least(month + INTERVAL 1 MONTH - INTERVAL 1 DAY, {to_date})::DATE
                - greatest(month, {from_date})::DATE + 1 AS overlap,
             (month + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE - month + 1 AS month_days
      FROM plans)
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE deals_by_company AS
SELECT company_id,
       count(*) FILTER (WHERE semantic = 'success' AND closed_in_period) AS deals_won,
       max(last_touch_at) AS last_touch_at
FROM df GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE acts_by_company AS
SELECT CASE WHEN owner_type = 'company' THEN owner_id END AS company_id,
       count(*) FILTER (WHERE counted AND kind = 'call') AS calls,
       count(*) FILTER (WHERE counted AND kind = 'email') AS emails,
       count(*) FILTER (WHERE counted AND kind = 'meeting') AS meetings
FROM (SELECT *, created_at >= {period_start} AND created_at < {period_end}
                AND created_at < {as_of_end} AS counted FROM activities)
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE client_rows AS
SELECT k.company_id, ci.company, ci.inn,
       coalesce(t.turnover, 0) AS turnover, coalesce(t.orders, 0) AS orders,
       coalesce(t.volume, 0) AS volume, coalesce(p.plan, 0) AS plan,
       coalesce(d.deals_won, 0) AS deals_won, coalesce(a.calls, 0) AS calls,
       coalesce(a.emails, 0) AS emails, coalesce(a.meetings, 0) AS meetings,
       d.last_touch_at, coalesce(t.turnover_prev, 0) AS turnover_prev
FROM (SELECT company_id FROM company_inns UNION SELECT company_id FROM turnover
      UNION SELECT company_id FROM plan_by_company UNION SELECT company_id FROM deals_by_company
      UNION SELECT company_id FROM acts_by_company) k
LEFT JOIN (SELECT company_id, max(company) AS company, max(inn_digits) AS inn
           FROM company_inns GROUP BY ALL) ci ON ci.company_id = k.company_id
LEFT JOIN turnover t ON t.company_id = k.company_id
LEFT JOIN plan_by_company p ON p.company_id = k.company_id
LEFT JOIN deals_by_company d ON d.company_id = k.company_id
LEFT JOIN acts_by_company a ON a.company_id = k.company_id
WHERE k.company_id IS NOT NULL;

-- block: by_client
SELECT company_id, company, inn, turnover, orders, volume, plan,
       100.0 * turnover / nullif(plan, 0) AS completion_pct,
       deals_won, calls, emails, meetings, last_touch_at, turnover_prev,
       100.0 * (turnover - turnover_prev) / nullif(turnover_prev, 0) AS turnover_change_pct
FROM client_rows
ORDER BY turnover DESC, company, company_id;

-- block: at_risk
SELECT company_id, company, inn, turnover, turnover_prev, turnover_change_pct,
       last_touch_at, days_since_touch
FROM (SELECT *, 100.0 * (turnover - turnover_prev) / nullif(turnover_prev, 0) AS turnover_change_pct,
             DATE '{as_of}' - last_touch_at::DATE AS days_since_touch
      FROM client_rows)
WHERE turnover_change_pct <= -30 AND (days_since_touch IS NULL OR days_since_touch >= 30)
-- Ordered by the ratio as IEEE doubles compute it, operation for operation, as Svodka
-- does: a drop of "exactly" 100 % may differ in the last bit from company to company.
ORDER BY 100.0::DOUBLE * (turnover - turnover_prev)::DOUBLE / nullif(turnover_prev, 0)::DOUBLE,
         company, company_id;
