/// The cluster's shared queue as a Redis Functions library, loaded (`FUNCTION LOAD REPLACE`) by every node when it
/// connects. Each call runs atomically inside Redis, so two nodes can never take the same waiting client: the
/// matchmaker's rules (`Matchmaker`) are here once more, over Redis keys:
/// - `uvchat:ticket`: the global ticket (FIFO across nodes);
/// - `uvchat:e:<entry>`: one waiting client (its node, slot, ticket, interests, serial, avoid lists, pool, profile);
/// - `uvchat:r:<pool>` (random-willing) and `uvchat:t:<pool>:<tag>` (per interest): sorted sets of entries by
///   ticket, so a list's head is its longest-waiting client;
/// - `uvchat:ne:<node>`: a node's entries (so a reaped node's clients leave the queue);
/// - `uvchat:nodes` (node, last heartbeat in Redis's own clock, ms) and `uvchat:online` (node, members).
/// - `uvchat:nodenum` and `uvchat:numnode`: each node's number (1-4095), which its resume tokens carry;
/// - `uvchat:xb:<num>:<slot>` and `uvchat:x:<num>:<slot>`: a chat a draining node left for its sides' resumes
///   (`ChatExport`), and `uvchat:mv:<num>:<slot>`: where a side's chat went once a node took it up; all three
///   expire with the resume grace.
/// The node that owns a waiting client keeps its interest timer and calls `uvchat_expire` when it runs out.
/// Entries hold numbers, tags, node names and a waiting client's profile (its protocol version, whether it takes
/// images, and its address, which the home node's per-address limits and moderation need): no chat text, no token,
/// no identity. Redis keeps it in memory only (the shipped configuration has no persistence), and an entry goes when
/// its client is paired or leaves.
enum ClusterFunctions {
    static let library = """
    #!lua name=uvchat

    local function split(s, sep)
      local out = {}
      if s == nil or s == false or s == '' then return out end
      local start = 1
      while true do
        local i = string.find(s, sep, start, true)
        if not i then out[#out + 1] = string.sub(s, start); break end
        out[#out + 1] = string.sub(s, start, i - 1)
        start = i + 1
      end
      return out
    end

    local function set_of(list)
      local t = {}
      for _, v in ipairs(list) do t[v] = true end
      return t
    end

    local function load(id)
      local f = redis.call('HMGET', 'uvchat:e:' .. id, 'n', 'p', 't', 'i', 's', 'a', 'd', 'b', 'o', 'm')
      if not f[1] then return nil end
      return { id = id, n = f[1], p = f[2], t = tonumber(f[3]), i = split(f[4], '\\n'), s = f[5],
               a = set_of(split(f[6], ',')), d = f[7], b = set_of(split(f[8], ',')), o = f[9], m = f[10] }
    end

    -- Neither names the other's serial, nor (where both have one) the other's identity.
    local function compatible(me, other)
      if other.id == me.id then return false end
      if me.a[other.s] or other.a[me.s] then return false end
      if other.d ~= '' and me.b[other.d] then return false end
      if me.d ~= '' and other.b[me.d] then return false end
      return true
    end

    -- The longest-waiting compatible entry of a list, passing over at most 16 others.
    local function first_compatible(key, me)
      local ids = redis.call('ZRANGE', key, 0, 16)
      for _, id in ipairs(ids) do
        local other = load(id)
        if other == nil then
          redis.call('ZREM', key, id)
        elseif compatible(me, other) then
          return other
        end
      end
      return nil
    end

    local function remove(e)
      redis.call('ZREM', 'uvchat:r:' .. e.o, e.id)
      for _, tag in ipairs(e.i) do redis.call('ZREM', 'uvchat:t:' .. e.o .. ':' .. tag, e.id) end
      redis.call('SREM', 'uvchat:ne:' .. e.n, e.id)
      redis.call('DEL', 'uvchat:e:' .. e.id)
    end

    local function paired(me, other, common, random)
      return { 'paired', other.n, other.p, other.id, other.s, other.m, table.concat(common, '\\n'),
               random and 1 or 0, other.t < me.t and 1 or 0, table.concat(other.i, '\\n') }
    end

    -- args: node, entry, slot, interests (newline-separated), serial, avoid (comma-separated), identity,
    -- avoided identities, pool, profile, the entry this client gives up ('' for none).
    local function enqueue(keys, args)
      if args[11] ~= '' then
        local old = load(args[11])
        if old then remove(old) end
      end
      local me = { id = args[2], n = args[1], p = args[3], i = split(args[4], '\\n'), s = args[5],
                   a = set_of(split(args[6], ',')), d = args[7], b = set_of(split(args[8], ',')), o = args[9],
                   m = args[10] }
      me.t = redis.call('INCR', 'uvchat:ticket')
      if #me.i == 0 then
        local other = first_compatible('uvchat:r:' .. me.o, me)
        if other then
          remove(other)
          return paired(me, other, {}, true)
        end
      else
        local best = nil
        for _, tag in ipairs(me.i) do
          local other = first_compatible('uvchat:t:' .. me.o .. ':' .. tag, me)
          if other and (best == nil or other.t < best.t) then best = other end
        end
        if best then
          local theirs, seen, common = set_of(best.i), {}, {}
          for _, tag in ipairs(me.i) do
            if theirs[tag] and not seen[tag] then
              common[#common + 1] = tag
              seen[tag] = true
            end
          end
          remove(best)
          return paired(me, best, common, false)
        end
      end
      redis.call('HSET', 'uvchat:e:' .. me.id, 'n', me.n, 'p', me.p, 't', me.t, 'i', args[4], 's', me.s,
                 'a', args[6], 'd', me.d, 'b', args[8], 'o', me.o, 'm', me.m)
      if #me.i == 0 then
        redis.call('ZADD', 'uvchat:r:' .. me.o, me.t, me.id)
      else
        local seen = {}
        for _, tag in ipairs(me.i) do
          if not seen[tag] then
            seen[tag] = true
            redis.call('ZADD', 'uvchat:t:' .. me.o .. ':' .. tag, me.t, me.id)
          end
        end
      end
      redis.call('SADD', 'uvchat:ne:' .. me.n, me.id)
      return { 'waiting', me.t }
    end

    -- The entry's interest wait ran out: the longest-waiting random-willing client, or it becomes one itself (it
    -- stays in its tag lists, so a newcomer who shares a tag still finds it).
    local function expire(keys, args)
      local me = load(args[1])
      if me == nil then return { 'gone' } end
      local other = first_compatible('uvchat:r:' .. me.o, me)
      if other then
        remove(other)
        remove(me)
        return paired(me, other, {}, true)
      end
      redis.call('ZADD', 'uvchat:r:' .. me.o, me.t, me.id)
      return { 'waiting', me.t }
    end

    local function dequeue(keys, args)
      local e = load(args[1])
      if e == nil then return 0 end
      remove(e)
      return 1
    end

    -- 'name#run' is the live run of its node.
    local function live_run(holder)
      local at = string.find(holder, '#', 1, true)
      if not at then return false end
      local name = string.sub(holder, 1, at - 1)
      return redis.call('ZSCORE', 'uvchat:nodes', name) ~= false
        and redis.call('HGET', 'uvchat:run', name) == string.sub(holder, at + 1)
    end

    local function reap(node)
      for _, id in ipairs(redis.call('SMEMBERS', 'uvchat:ne:' .. node)) do
        local e = load(id)
        if e then remove(e) end
      end
      redis.call('DEL', 'uvchat:ne:' .. node)
      redis.call('HDEL', 'uvchat:online', node)
      redis.call('ZREM', 'uvchat:nodes', node)
    end

    -- args: node, timeout (ms), members online here. Reaps every other node silent for the timeout; returns
    -- whether this node was still registered, the cluster's online count, the live nodes and those reaped now.
    local function heartbeat(keys, args)
      local node, timeout = args[1], tonumber(args[2])
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local present = redis.call('ZSCORE', 'uvchat:nodes', node) and 1 or 0
      local reaped = {}
      for _, dead in ipairs(redis.call('ZRANGEBYSCORE', 'uvchat:nodes', '-inf', now - timeout)) do
        if dead ~= node then
          reap(dead)
          reaped[#reaped + 1] = dead
        end
      end
      redis.call('ZADD', 'uvchat:nodes', now, node)
      redis.call('HSET', 'uvchat:online', node, args[3])
      local total = 0
      for _, v in ipairs(redis.call('HVALS', 'uvchat:online')) do total = total + (tonumber(v) or 0) end
      -- The number (1-4095) of this run of the node (args[4] names the run: a restarted node gets a new number, so
      -- that the tokens of its last run are never taken for its own), which its resume tokens carry. Numbers go
      -- round: one is used again only after all the others, and never while its run lives.
      local run = node .. '#' .. args[4]
      redis.call('HSET', 'uvchat:run', node, args[4])
      local num = redis.call('HGET', 'uvchat:nodenum', run)
      if not num then
        for _ = 1, 4095 do
          local n = (redis.call('INCR', 'uvchat:nodeseq') - 1) % 4095 + 1
          local holder = redis.call('HGET', 'uvchat:numnode', n)
          if not holder or not live_run(holder) then
            if holder then redis.call('HDEL', 'uvchat:nodenum', holder) end
            redis.call('HSET', 'uvchat:numnode', n, run)
            redis.call('HSET', 'uvchat:nodenum', run, n)
            num = n
            break
          end
        end
      end
      return { present, total, redis.call('ZRANGE', 'uvchat:nodes', 0, -1), reaped, tonumber(num) or 0 }
    end

    -- A draining node leaves a chat for its sides' resumes: args node number, the two sides' slots, the chat, how
    -- long it is kept (ms), and the node that takes it up first ('' for whichever side resumes first).
    local function export(keys, args)
      local num, a, b, ttl = args[1], args[2], args[3], tonumber(args[5])
      local pointer = a .. '|' .. b .. '|' .. (args[6] or '')
      redis.call('SET', 'uvchat:xb:' .. num .. ':' .. a, args[4], 'PX', ttl)
      redis.call('SET', 'uvchat:x:' .. num .. ':' .. a, pointer, 'PX', ttl)
      redis.call('SET', 'uvchat:x:' .. num .. ':' .. b, pointer, 'PX', ttl)
      return 1
    end

    -- Where the chat of a token (node number, slot) is: it moved to a live node and slot; its node still lives; or
    -- it was exported and the caller (args: name, this side's slot, the other's, its number) takes it up now.
    local function locate(keys, args)
      local num, slot, claimant = args[1], args[2], args[3]
      -- A chat may have moved more than once (each drain of its home): follow it to where it is.
      for _ = 1, 8 do
        local moved = redis.call('GET', 'uvchat:mv:' .. num .. ':' .. slot)
        if not moved then break end
        local at = split(moved, ':')
        local there = redis.call('HGET', 'uvchat:numnode', at[3])
        if there and live_run(there) then return { 'moved', at[1], at[2] } end
        num, slot = at[3], at[2]
      end
      local holder = redis.call('HGET', 'uvchat:numnode', num)
      if holder and live_run(holder) then return { 'live', string.sub(holder, 1, string.find(holder, '#', 1, true) - 1) } end
      local x = redis.call('GET', 'uvchat:x:' .. num .. ':' .. slot)
      if not x then return { 'none' } end
      local parts = split(x, '|')
      local first = parts[1]
      -- A side still connected to another node is taken up by that node first (it is told at once); a resume
      -- that comes sooner waits for it.
      if parts[3] and parts[3] ~= '' and parts[3] ~= claimant then return { 'wait' } end
      local other = slot == first and parts[2] or first
      local blobKey = 'uvchat:xb:' .. num .. ':' .. first
      local blob = redis.call('GET', blobKey)
      local ttl = redis.call('PTTL', blobKey)
      redis.call('DEL', blobKey, 'uvchat:x:' .. num .. ':' .. slot, 'uvchat:x:' .. num .. ':' .. other)
      if not blob or ttl <= 0 then return { 'none' } end
      redis.call('SET', 'uvchat:mv:' .. num .. ':' .. slot, claimant .. ':' .. args[4] .. ':' .. args[6], 'PX', ttl)
      redis.call('SET', 'uvchat:mv:' .. num .. ':' .. other, claimant .. ':' .. args[5] .. ':' .. args[6], 'PX', ttl)
      -- (With the token it was found under, which a chat that moved before is exported by.)
      return { 'state', blob, tonumber(num), tonumber(slot) }
    end

    -- A node that stops on purpose takes itself out at once.
    local function leave(keys, args)
      reap(args[1])
      return 1
    end

    redis.register_function('uvchat_enqueue', enqueue)
    redis.register_function('uvchat_expire', expire)
    redis.register_function('uvchat_dequeue', dequeue)
    redis.register_function('uvchat_heartbeat', heartbeat)
    redis.register_function('uvchat_leave', leave)
    redis.register_function('uvchat_export', export)
    redis.register_function('uvchat_locate', locate)
    """
}
