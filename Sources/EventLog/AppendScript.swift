import Drivers

/// The one atomic step of every append: check the facts a decision relied on, drop a
/// duplicate client message, then for each event assign `seq`, chain the hash, XADD and
/// apply its guard-state effects. Redis runs a script alone, so no other append of the
/// partition can come between the check and the write. The script knows no chat rule:
/// the rules are Swift (`Rules.decide`), the script only verifies their facts.
///
/// KEYS: 1 the stream, 2 the chain head, 3... the guard keys the request refers to by index,
/// and last the partition's lost-entries flag (`GuardKeys.lostEntries`): while it exists the
/// script appends nothing and answers {"lost", what a projector found}.
/// ARGV, read in order (flat, so the script parses nothing):
///   factCount, then per fact: keyIndex, field, expected value ("" with absent=1: must be absent), absent; absent=2
///     (a message's record read from the archive) is followed by roomKeyIndex, evictions: the field equals the expected
///     value, or it is absent and the room's `ev` (evictions so far) is still `evictions`
///   dedupeKeyIndex ("" for none), dedupeField
///   eventCount, then per event: body, sha256(body), seqKeyIndex ("" for none), opCount,
///     then per op: op, keyIndex, field, value
/// ops: "set" (HSET), "hdel" (HDEL of the field), "id" (HSET to this event's entry id), "sadd"/"srem" (SADD/SREM of
/// `value`, the field unused).
/// Returns {"ok", id1, seq1, prevHash1, hash1, ...} (seq "" when none; the stored JSON is
/// the body the caller sent plus the suffix it can rebuild from these), {"dup", id, json}
/// {"conflict", factIndex} or {"lost", detail}.
let appendScript = RedisScript(
    #"""
    if redis.call('EXISTS', KEYS[#KEYS]) == 1 then
      return {'lost', table.concat(redis.call('HVALS', KEYS[#KEYS]), '; ')}
    end
    local a = 1
    local function nextArg() local v = ARGV[a]; a = a + 1; return v end
    local factCount = tonumber(nextArg())
    for i = 1, factCount do
      local key, field, expected, absent = KEYS[tonumber(nextArg())], nextArg(), nextArg(), nextArg()
      local value = redis.call('HGET', key, field)
      if absent == '1' then
        if value then return {'conflict', tostring(i)} end
      elseif absent == '2' then
        local roomKey, evictions = KEYS[tonumber(nextArg())], nextArg()
        if value then
          if value ~= expected then return {'conflict', tostring(i)} end
        elseif (redis.call('HGET', roomKey, 'ev') or '0') ~= evictions then
          return {'conflict', tostring(i)}
        end
      elseif value ~= expected then
        return {'conflict', tostring(i)}
      end
    end
    local dedupeKey, previousKey, dedupeField = nextArg(), nextArg(), nextArg()
    if dedupeKey ~= '' then
      local existing = redis.call('HGET', KEYS[tonumber(dedupeKey)], dedupeField)
        or redis.call('HGET', KEYS[tonumber(previousKey)], dedupeField)
      if existing then
        local entries = redis.call('XRANGE', KEYS[1], existing, existing)
        if #entries == 1 then return {'dup', existing, entries[1][2][2]} end
        -- Older than the stream's oldest entry: trimmed since (archived first), still a repeat; its event is read from
        -- the archive.
        local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
        if first then
          local em, es = string.match(existing, '(%d+)-(%d+)')
          local fm, fs = string.match(first[1], '(%d+)-(%d+)')
          if tonumber(em) < tonumber(fm) or (tonumber(em) == tonumber(fm) and tonumber(es) < tonumber(fs)) then
            return {'dup', existing, ''}
          end
        end
      end
    end
    local result = {'ok'}
    local head = redis.call('GET', KEYS[2]) or '0000000000000000000000000000000000000000'
    local eventCount = tonumber(nextArg())
    for _ = 1, eventCount do
      local body, digest, seqKey, opCount = nextArg(), nextArg(), nextArg(), tonumber(nextArg())
      local seqText = ''
      local suffix = ''
      if seqKey ~= '' then
        seqText = tostring(redis.call('HINCRBY', KEYS[tonumber(seqKey)], 'seq', 1))
        suffix = ',"seq":' .. seqText
      end
      local hash = redis.sha1hex(head .. digest .. seqText)
      local id = redis.call('XADD', KEYS[1], '*', 'event', body .. suffix .. ',"prevHash":"' .. head .. '","hash":"' .. hash .. '"}')
      for _ = 1, opCount do
        local op, key, field, value = nextArg(), KEYS[tonumber(nextArg())], nextArg(), nextArg()
        if op == 'sadd' then
          redis.call('SADD', key, value)
        elseif op == 'srem' then
          redis.call('SREM', key, value)
        elseif op == 'expireat' then
          redis.call('PEXPIREAT', key, value)
        elseif op == 'hdel' then
          redis.call('HDEL', key, field)
        else
          if op == 'id' then value = id end
          redis.call('HSET', key, field, value)
        end
      end
      result[#result + 1] = id
      result[#result + 1] = seqText
      result[#result + 1] = head
      result[#result + 1] = hash
      head = hash
    end
    redis.call('SET', KEYS[2], head)
    return result
    """#)
