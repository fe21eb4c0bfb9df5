## `select`: wait on several channel operations and run the branch of the one
## that happens — the syntax the original nimsync's channels_select example
## planned.
##
## .. code-block:: nim
##   select:
##     msg <- ch1:                 # receive from ch1 into a new `msg`
##       echo "ch1: ", msg
##     recv(ch2, msg):             # the same, spelled as a call
##       echo "ch2: ", msg
##     send(results, 42):          # send 42 to results
##       echo "sent"
##     timeout(1.seconds):         # none happened within a second (a Duration,
##                                 # TimeInterval or int milliseconds)
##       echo "timeout"
##
## Instead of `timeout`, a `default:` branch runs when no operation can happen
## right away. Without either, `select` waits as long as it takes. Cases are
## tried from a random start so that none starves; threads park, nothing
## polls. A receive from a closed, drained channel or a send to a closed
## channel raises `ChannelClosedError`. Items of sends that were not chosen
## are destroyed.

import std/[macros, times]
import private/abi
import channels, errors


type
  BranchKind = enum bkRecv, bkSend, bkTimeout, bkDefault
  Branch = object
    kind: BranchKind
    channel, value, name, body: NimNode

proc parseBranch(n: NimNode): Branch =
  case n.kind
  of nnkInfix:
    if n.len == 4 and n[0].eqIdent("<-"):
      return Branch(kind: bkRecv, name: n[1], channel: n[2], body: n[3])
  of nnkCall:
    let head = n[0]
    if head.eqIdent("recv") and n.len == 4:
      return Branch(kind: bkRecv, channel: n[1], name: n[2], body: n[3])
    if head.eqIdent("send") and n.len == 4:
      return Branch(kind: bkSend, channel: n[1], value: n[2], body: n[3])
    if head.eqIdent("timeout") and n.len == 3:
      return Branch(kind: bkTimeout, value: n[1], body: n[2])
    if head.eqIdent("default") and n.len == 2:
      return Branch(kind: bkDefault, body: n[1])
  else:
    discard
  error("a select branch is `name <- channel:`, `recv(channel, name):`, " &
        "`send(channel, value):`, `timeout(duration):` or `default:`", n)

macro select*(body: untyped): untyped =
  ## Runs the branch of the one operation that happens (see the module docs).
  var branches: seq[Branch]
  var timeoutBranch, defaultBranch = -1
  for n in body:
    if n.kind in {nnkCommentStmt}: continue
    let b = parseBranch(n)
    case b.kind
    of bkTimeout:
      if timeoutBranch >= 0 or defaultBranch >= 0:
        error("select takes one `timeout` or one `default` branch", n)
      timeoutBranch = branches.len
    of bkDefault:
      if timeoutBranch >= 0 or defaultBranch >= 0:
        error("select takes one `timeout` or one `default` branch", n)
      defaultBranch = branches.len
    else: discard
    branches.add b

  let cases = genSym(nskVar, "cases")
  let index = genSym(nskVar, "index")
  let item = genSym(nskVar, "item")
  let status = genSym(nskLet, "status")
  var ops: seq[int]                  # branch index of each case
  var chanSyms: seq[NimNode]
  result = newStmtList()
  for i, b in branches:
    if b.kind in {bkRecv, bkSend}:
      let ch = genSym(nskLet, "ch")
      result.add newLetStmt(ch, b.channel)
      chanSyms.add ch
      ops.add i
    else:
      chanSyms.add nil
  let n = ops.len
  if n == 0:
    error("select needs at least one receive or send branch", body)
  result.add quote do:
    var `cases`: array[`n`, SelectCase]
    var `index`: csize_t
    var `item`: uint
  for k, bi in ops:
    let b = branches[bi]
    let ch = chanSyms[bi]
    if b.kind == bkRecv:
      result.add quote do:
        `cases`[`k`] = SelectCase(channel: rawHandle(`ch`), op: SelectRecv)
    else:
      let v = b.value
      result.add quote do:
        `cases`[`k`] = SelectCase(channel: rawHandle(`ch`), op: SelectSend, item: encodeItem(`ch`, `v`))
  let timeoutExpr =
    if timeoutBranch >= 0: newCall(bindSym"timeoutNs", branches[timeoutBranch].value)
    elif defaultBranch >= 0: newLit(0'u64)
    else: bindSym"WaitForever"
  result.add quote do:
    let `status` = nimsync_select(addr `cases`[0], csize_t(`n`), `timeoutExpr`, addr `index`, addr `item`)
  # Destroy the items of sends that did not happen.
  for k, bi in ops:
    if branches[bi].kind == bkSend:
      let ch = chanSyms[bi]
      result.add quote do:
        if not (`status` == StatusOk and int(`index`) == `k`):
          discardItem(`ch`, `cases`[`k`].item)
  # Dispatch.
  var chosen = nnkCaseStmt.newTree(newCall(bindSym"int", index))
  for k, bi in ops:
    let b = branches[bi]
    let ch = chanSyms[bi]
    var branchBody = newStmtList()
    if b.kind == bkRecv:
      branchBody.add newLetStmt(b.name, newCall(bindSym"decodeItem", ch, item))
    branchBody.add b.body
    chosen.add nnkOfBranch.newTree(newLit(k), branchBody)
  chosen.add nnkElse.newTree(quote do: discard)
  var dispatch = nnkIfStmt.newTree(
    nnkElifBranch.newTree(infix(status, "==", bindSym"StatusOk"), newStmtList(chosen)))
  if timeoutBranch >= 0:
    dispatch.add nnkElifBranch.newTree(infix(status, "==", bindSym"StatusTimeout"),
                                       branches[timeoutBranch].body)
  if defaultBranch >= 0:
    dispatch.add nnkElifBranch.newTree(infix(status, "==", bindSym"StatusEmpty"),
                                       branches[defaultBranch].body)
  dispatch.add nnkElse.newTree(newCall(bindSym"raiseStatus", status))
  result.add dispatch
  result = newBlockStmt(result)
