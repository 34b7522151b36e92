//go:build race

package handlers_test

// raceAllocs is what the race detector adds to the allocations AllocsPerRun counts.
const raceAllocs = 1
