package orderstate

import (
	"context"
	"errors"
	"strings"
)

// Reindex files in the order index the states of shop ("" for every shop) that are not in it:
// states written before the index existed, which have no index entry and no expiry until their
// next write. Each is written again as it is, filed as changed when it was last written (and
// ordered then, if it holds no time ordered), so that it expires one retention after that, as if
// the index had always been there (one last written longer ago than the store refreshes counts
// as changed now, as any late write does). A state a worker writes meanwhile is left to that
// write (a lost compare-and-set). It returns how many states it read and how many it filed;
// cancelling ctx stops it between states.
func (s *Store) Reindex(ctx context.Context, shop string) (read, filed int, err error) {
	pattern := s.prefix + "order:{" + shop + "}:*"
	if shop == "" {
		pattern = s.prefix + "order:{*"
	}
	err = s.scanAll(ctx, pattern, func(key string) error {
		shopID, order, ok := strings.Cut(strings.TrimPrefix(key, s.prefix+"order:{"), "}:")
		if !ok {
			return nil
		}
		read++
		done, err := s.reindexOne(ctx, shopID, order)
		if done {
			filed++
		}
		return err
	})
	return read, filed, err
}

// reindexOne files one state not in the index, and says whether it did.
func (s *Store) reindexOne(ctx context.Context, shop, order string) (bool, error) {
	st, err := s.Get(ctx, shop, order)
	if err != nil || st.Version == 0 || st.Index != "" {
		return false, err
	}
	last := st.UpdatedAt
	if last.IsZero() {
		last = s.now()
	}
	st.ChangedAt = last
	if st.OrderedAt.IsZero() {
		st.OrderedAt = last
	}
	ix := indexEntryOf(st)
	st.Index = ix.changed + "|" + ix.ordered + "|" + ix.summary // as encode would: the time changed stands
	_, err = s.Put(ctx, shop, order, st, s.now())
	if errors.Is(err, ErrConflict) {
		return false, nil // written meanwhile, and so filed
	}
	return err == nil, err
}
