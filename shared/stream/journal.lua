-- The journal's format in Lua (shared/stream/journal.py describes it), for the scripts that
-- write or read a job's journal: one entry per chunk, id `<seq>-1`, the chunk in field `c`.

-- Append chunk `seq` (its JSON), keeping about `max_chunks`: nil, or the error reply of a
-- failed XADD. An id already taken is no error: an earlier try journaled this chunk and lost
-- its reply (Redis went away), so the caller may publish it again.
local function journal_append(journal, seq, chunk, max_chunks)
  local added = redis.pcall('XADD', journal, 'MAXLEN', '~', max_chunks, seq .. '-1', 'c', chunk)
  if type(added) == 'table' and added.err and not string.find(added.err, 'equal or smaller') then
    return added
  end
  return nil
end

-- The chunks after `seq` (their JSON), oldest first.
local function journal_after(journal, seq)
  local chunks = {}
  for i, entry in ipairs(redis.call('XRANGE', journal, (tonumber(seq) + 1) .. '-0', '+')) do
    chunks[i] = entry[2][2]
  end
  return chunks
end

-- The newest chunk (its JSON), or nil if there is none.
local function journal_last(journal)
  local last = redis.call('XREVRANGE', journal, '+', '-', 'COUNT', 1)
  if #last == 0 then return nil end
  return last[1][2][2]
end
