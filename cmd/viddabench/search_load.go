package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// vital is one of the five vital signs the load spreads its Observations
// over.
type vital struct {
	code, display, unit string
	lo, hi              float64
}

// searchVitals are the five vital signs, the blood pressure panel first.
func searchVitals() []vital {
	return []vital{
		{"85354-9", "Blood pressure panel with all children optional", "mm[Hg]", 0, 0},
		{"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 90, 100},
		{"8867-4", "Heart rate", "/min", 50, 110},
		{"29463-7", "Body weight", "kg", 50, 110},
		{"8310-5", "Body temperature", "Cel", 36, 38.5},
	}
}

// searchLoad is what the load phase reports.
type searchLoad struct {
	Patients      int     `json:"patients"`
	Observations  int     `json:"observations"`
	PatientsS     float64 `json:"patients_seconds"`
	CopyS         float64 `json:"copy_seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
	VacuumS       float64 `json:"vacuum_analyze_seconds"`
	TableMiB      float64 `json:"table_mib"`
	IndexMiB      float64 `json:"index_mib"`
	Loaders       int     `json:"loaders"`
	Method        string  `json:"method"`
}

// searchData is what the query phases need from the load.
type searchData struct {
	patients  []string // Patient ids (also their patient_id column value, see patientKey)
	keys      []string // patient_id column value of each patient
	firstCode []string // code[1] of each vital, sorted as $lastn returns them
	bpToken   string   // the code token of the blood pressure panel
	now       time.Time
}

func searchPatientID(i int) string { return fmt.Sprintf("sp-%05d", i) }

// loadSearchData creates the Patients through the store, then COPYs the
// Observations, made by store.IngestRows, with the indexes in place.
func loadSearchData(ctx context.Context, o searchOptions, dbURL string, l *searchLoad) (*searchData, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	cfg.MaxConns = int32(max(o.loaders, provisionWorkers)) //nolint:gosec // bounded by the flag checks
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer pool.Close()
	st := store.New(pool, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	ds := &searchData{now: time.Now().UTC().Truncate(time.Second)}
	l.Patients, l.Loaders, l.Method = o.patients, o.loaders, "COPY with the indexes in place"

	t0 := time.Now()
	ds.patients = make([]string, o.patients)
	for i := range ds.patients {
		ds.patients[i] = searchPatientID(i)
	}
	errs := make([]error, provisionWorkers)
	var wg sync.WaitGroup
	for w := range provisionWorkers {
		wg.Go(func() {
			for i := w; i < o.patients && ctx.Err() == nil && errs[w] == nil; i += provisionWorkers {
				errs[w] = put(ctx, st, map[string]any{
					"resourceType": "Patient", "id": ds.patients[i], "active": true,
					"name": []any{map[string]any{"family": "Search", "given": []string{strconv.Itoa(i)}}},
				})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	l.PatientsS = time.Since(t0).Seconds()

	cols, _, _, err := st.IngestRows(nil, ds.now)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	patientCol, codeCol := slices.Index(cols, "patient_id"), slices.Index(cols, "code")
	if patientCol < 0 || codeCol < 0 {
		return nil, fmt.Errorf("load: observation columns %v lack patient_id or code", cols)
	}
	// One row per vital tells the values the baseline queries by.
	for i, v := range searchVitals() {
		row, err := searchRow(st, fhir.NewRegistry(), ds.patients[0], v, 0, i, ds.now, rand.New(rand.NewPCG(1, 1))) //nolint:gosec // test data
		if err != nil {
			return nil, err
		}
		code, ok := row[codeCol].([]string)
		if !ok || len(code) == 0 {
			return nil, fmt.Errorf("load: the code column of %s is %v", v.code, row[codeCol])
		}
		ds.firstCode = append(ds.firstCode, code[0])
		if i == 0 {
			ds.bpToken = "http://loinc.org|" + v.code
			if !slices.Contains(code, ds.bpToken) {
				return nil, fmt.Errorf("load: the code column %v lacks %s", code, ds.bpToken)
			}
		}
	}
	slices.Sort(ds.firstCode)
	ds.keys = make([]string, o.patients)

	t0 = time.Now()
	counts := make([]int, o.loaders)
	errs = make([]error, o.loaders)
	for w := range o.loaders {
		wg.Go(func() {
			counts[w], errs[w] = loadWorker(ctx, pool, st, o, ds, cols, patientCol, w)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	l.CopyS = time.Since(t0).Seconds()
	for _, n := range counts {
		l.Observations += n
	}
	l.RowsPerSecond = float64(l.Observations) / l.CopyS
	t0 = time.Now()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE observation"); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	l.VacuumS = time.Since(t0).Seconds()
	// The load leaves the cluster's shared buffers dirty; the checkpointer
	// would write them out during the first timed phases (fsync on), so
	// both sides start from a checkpoint instead.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var table, index int64
	if err := pool.QueryRow(ctx, "SELECT pg_table_size('observation'), pg_indexes_size('observation')").Scan(&table, &index); err != nil {
		return nil, fmt.Errorf("table size: %w", err)
	}
	l.TableMiB, l.IndexMiB = float64(table)/(1<<20), float64(index)/(1<<20)
	return ds, nil
}

// copyBatch is how many rows one COPY writes.
const searchCopyBatch = 5000

// loadWorker COPYs the Observations of every loaders-th patient from w.
func loadWorker(ctx context.Context, pool *pgxpool.Pool, st *store.Store, o searchOptions, ds *searchData, cols []string, patientCol, w int) (int, error) {
	reg := fhir.NewRegistry()
	rng := rand.New(rand.NewPCG(uint64(w), 42)) //nolint:gosec // test data
	per, extra := o.observations/o.patients, o.observations%o.patients
	vitals := searchVitals()
	batch := make([][]any, 0, searchCopyBatch)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"observation"}, cols, pgx.CopyFromRows(batch)); err != nil {
			return fmt.Errorf("copy observations: %w", err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for p := w; p < o.patients; p += o.loaders {
		count := per
		if p < extra {
			count++
		}
		for k := range count {
			row, err := searchRow(st, reg, ds.patients[p], vitals[k%len(vitals)], p, k, ds.now, rng)
			if err != nil {
				return n, err
			}
			if k == 0 {
				key, ok := row[patientCol].(*string)
				if !ok || key == nil {
					return n, fmt.Errorf("load: patient_id of %s is %v", ds.patients[p], row[patientCol])
				}
				ds.keys[p] = *key // each worker writes only its own patients
			}
			batch = append(batch, row)
			if len(batch) == searchCopyBatch {
				if err := flush(); err != nil {
					return n, err
				}
			}
		}
		if ctx.Err() != nil {
			return n, fmt.Errorf("load: %w", ctx.Err())
		}
	}
	return n, flush()
}

// searchRow makes the observation row of reading k of patient p: a vital
// sign taken at a random second of the last 365 days, stored 5 s later.
func searchRow(st *store.Store, reg *fhir.Registry, patient string, v vital, p, k int, now time.Time, rng *rand.Rand) ([]any, error) {
	at := now.Add(-time.Duration(rng.Int64N(int64(365*24*time.Hour))) - 10*time.Second).Truncate(time.Second)
	b := make([]byte, 0, 1024)
	b = append(b, `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"`...)
	b = append(b, v.code...)
	b = append(b, `","display":"`...)
	b = append(b, v.display...)
	b = append(b, `"}]},"subject":{"reference":"Patient/`...)
	b = append(b, patient...)
	b = append(b, `"},"effectiveDateTime":"`...)
	b = at.AppendFormat(b, time.RFC3339)
	b = append(b, '"')
	if v.code == "85354-9" {
		b = append(b, `,"component":[`...)
		b = appendComponent(b, "8480-6", "Systolic blood pressure", 100+rng.IntN(60))
		b = append(b, ',')
		b = appendComponent(b, "8462-4", "Diastolic blood pressure", 60+rng.IntN(35))
		b = append(b, ']')
	} else {
		value := v.lo + rng.Float64()*(v.hi-v.lo)
		b = append(b, `,"valueQuantity":{"value":`...)
		b = strconv.AppendFloat(b, float64(int(value*10))/10, 'f', -1, 64)
		b = append(b, `,"unit":"`...)
		b = append(b, v.unit...)
		b = append(b, `","system":"http://unitsofmeasure.org","code":"`...)
		b = append(b, v.unit...)
		b = append(b, `"}`...)
	}
	b = append(b, '}')
	res, err := reg.Parse("Observation", b)
	if err != nil {
		return nil, fmt.Errorf("parse observation: %w", err)
	}
	key := "search-" + strconv.Itoa(p) + "-" + strconv.Itoa(k)
	_, rows, _, err := st.IngestRows([]store.IngestObservation{{Key: key, Resource: res}}, at.Add(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("prepare observation: %w", err)
	}
	return rows[0], nil
}

func appendComponent(b []byte, code, display string, value int) []byte {
	b = append(b, `{"code":{"coding":[{"system":"http://loinc.org","code":"`...)
	b = append(b, code...)
	b = append(b, `","display":"`...)
	b = append(b, display...)
	b = append(b, `"}]},"valueQuantity":{"value":`...)
	b = strconv.AppendInt(b, int64(value), 10)
	return append(b, `,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`...)
}
