-- Partition management: which tables are partitioned, by what period, under which
-- retention tier; and the two functions that create and drop their partitions.
--
-- The functions are SECURITY DEFINER so the writer role (the exporter, which loads data
-- and runs the retention job) can create and drop partitions without owning the tables:
-- they accept only tables listed in meta.partitioned_tables and only touch partitions
-- named by the convention <table>_p<YYYYMMDD|YYYYMM>.

CREATE TABLE meta.partitioned_tables (
    table_name    text PRIMARY KEY CHECK (table_name ~ '^[a-z_]+\.[a-z_]+$'),
    granularity   text NOT NULL CHECK (granularity IN ('day', 'month')),
    -- key of the privacy policy's retention tiers (raw_events_days, aggregates_days, trends_days)
    retention_key text NOT NULL
);
COMMENT ON TABLE meta.partitioned_tables IS
    'Range-partitioned tables, their partition period and retention tier; read by the retention job.';

-- First day of the partition period that holds for_day.
CREATE FUNCTION meta.partition_start(granularity text, for_day date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE granularity
        WHEN 'day' THEN for_day
        ELSE date_trunc('month', for_day::timestamp)::date
    END
$$;

-- First day after the partition period that starts at start_day.
CREATE FUNCTION meta.partition_end(granularity text, start_day date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE granularity
        WHEN 'day' THEN start_day + 1
        ELSE (start_day + interval '1 month')::date
    END
$$;

-- Create (if missing) the partition of parent that holds for_day; return its name.
CREATE FUNCTION meta.ensure_partition(parent text, for_day date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    period      text;
    start_day   date;
    end_day     date;
    key_type    text;
    child       text;
    lower_bound text;
    upper_bound text;
BEGIN
    SELECT granularity INTO period FROM meta.partitioned_tables WHERE table_name = parent;
    IF period IS NULL THEN
        RAISE EXCEPTION 'table % is not a managed partitioned table', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    start_day := meta.partition_start(period, for_day);
    end_day := meta.partition_end(period, start_day);
    child := split_part(parent, '.', 2) || '_p'
        || to_char(start_day, CASE period WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);

    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type
    FROM pg_partitioned_table pt
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
    WHERE pt.partrelid = parent::regclass;
    IF key_type = 'timestamp with time zone' THEN
        -- Days are UTC days whatever the session's TimeZone.
        lower_bound := start_day::text || ' 00:00:00+00';
        upper_bound := end_day::text || ' 00:00:00+00';
    ELSE
        lower_bound := start_day::text;
        upper_bound := end_day::text;
    END IF;

    IF to_regclass(split_part(parent, '.', 1) || '.' || child) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           split_part(parent, '.', 1), child, parent, lower_bound, upper_bound);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;  -- a concurrent session created it first
        END;
    END IF;
    RETURN split_part(parent, '.', 1) || '.' || child;
END
$$;

-- Drop every partition of parent whose whole period ends on or before cutoff; return
-- the names dropped.
CREATE FUNCTION meta.drop_partitions_before(parent text, cutoff date) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    period    text;
    part      record;
    suffix    text;
    start_day date;
BEGIN
    SELECT granularity INTO period FROM meta.partitioned_tables WHERE table_name = parent;
    IF period IS NULL THEN
        RAISE EXCEPTION 'table % is not a managed partitioned table', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR part IN
        SELECT n.nspname, c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = parent::regclass
        ORDER BY c.relname
    LOOP
        suffix := substring(part.relname FROM '_p([0-9]{6}|[0-9]{8})$');
        CONTINUE WHEN suffix IS NULL;
        start_day := CASE length(suffix)
            WHEN 8 THEN to_date(suffix, 'YYYYMMDD')
            ELSE to_date(suffix, 'YYYYMM')
        END;
        IF meta.partition_end(period, start_day) <= cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', part.nspname, part.relname);
            RETURN NEXT part.nspname || '.' || part.relname;
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION meta.ensure_partition(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION meta.drop_partitions_before(text, date) FROM PUBLIC;
