// hqflow_stream_wlif: a streaming, time-batched weighted layer + LIF: conv K x K (stride 1, padding
// PAD) or linear (a 1 x 1 window over the tokens as an N x 1 image: H = N, W = 1, K = 1, PAD = 0).
//
//   acc[t][o] = sum_{c, i, j} w_eff[o][c][i][j] * x[t][c][y+i-PAD][x+j-PAD]   (numerics.conv2d_acc,
//               linear_acc), then over t = 0..T-1 the LIF (hqflow_lif_unit.v, numerics lif_step): s[t][o]
// Stream in:  elements (y*W + x)*C + c, each the T values x[0..T-1] of one input (X_BITS each, step t
//             in bits [t*X_BITS, (t+1)*X_BITS)), through the line buffer hqflow_window.v.
// Products: spikes (X_BITS 1) gate each lane's decoded weight; inputs of at most X_MAX = 2 (the sum of
// two spike maps: a residual add) select 0, w or 2 w of it (the decode shared by the T steps); wider
// inputs multiply per step (hqflow_lanes.v).
// Stream out: elements (y*W + x)*O + o, each the T spikes of one output neuron (bit t = step t);
//             tlast on an image's last element.
// Time-batched: a weight is read once per output pixel and applied to all T steps: P output channels
// (a lane group g, outputs g*P .. g*P+P-1) by T steps = P*T accumulators. Event-driven at the word
// level: an input element that is zero at every step adds nothing and costs no cycle (the line buffer
// keeps each pixel's list of nonzero channels and their count). Two units work side by side: the
// accumulation of a group and the LIF of the group before it. Per output pixel and group, the accumulation:
//   per window column j (K of them): MASK reads the K rows' counts of the column, COUNT registers them,
//          LOAD takes them (a column or row in the padding has none) and reads the lists' first entries,
//          then ACC one cycle per nonzero element (i, c), rows in order and channels ascending in each:
//          the element, ROM line ((i*K + j)*G + g)*C + c, T x P products added;
//   DRAIN  2 + MUL_LAT cycles (the last element's reads; its products land in HAND's first cycle: the
//          pick, the read addresses and the data read each registered, an element's products land
//          3 + MUL_LAT cycles after its ACC cycle; MUL_LAT > 0 only for multi-bit inputs that are not
//          selects: hqflow_lanes_piped's pipelined products, MUL_TREE 1 a tree in LUTs, 0 for a DSP);
//   HAND   1 cycle once the LIF unit is ready: the P x T sums go to the LIF unit (hqflow_lif_unit.v; the
//          group's own accumulators are zero again) and the next group starts.
// The LIF unit, per group: T M + 3 cycles after HAND (M = P / LIF_LANES; LIF_LANES neurons of step t a cycle, then
// the P spike words wait for the output bank, which streams them out). An output row ends with FLUSH:
// the accumulation waits for the LIF unit to finish the row's last group (so the cycles do not depend on
// when the next row arrives). Each output row starts with one cycle that waits for the window's rows
// (ROW). No membrane memory: the only state beyond the line buffer is the two groups being computed.
// `active` is high in the cycles the core advances (not waiting for input rows or output room):
//   active cycles per image = sum over output rows of (1 + (T M + 3) + sum over its groups of c),
//   c = A + 1 for the row's first group, max(A + 1, T M + 3) for the others, A = 3 K + NNZ_px + 2 + MUL_LAT,
// NNZ_px: the nonzero input elements in the output pixel's window (at most K K C).
// ROM: hqflow_weight_rom.v, one lane group a line: line ((i*K + j)*G + g)*C + c holds the P codes of
// tap (c, i, j) for outputs g*P .. g*P + P - 1, exactly what a cycle reads (channels innermost: the
// address of an element is a base per (i, j, g) plus its channel);
// ROM_TAIL > 0: its last ROM_TAIL lines in LUTs (ROM_TAIL_FILE), the others in block RAM (hqflow_weight_rom.v);
// LIST_LUTRAM 1: the line buffer's lists of nonzero elements in LUT RAM (0: its lists and rows in block RAM);
// LIF tables (CHARGE, FIRE, NEG: memfiles.lif_step_tables): LIF_LANES channels a line. ULTRA 1: the line buffer's rows in UltraRAM.
module hqflow_stream_wlif #(
    parameter integer H = 1, W = 1, C = 1, O = 1, K = 1, PAD = 0, P = 1,
    parameter integer BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
    parameter integer X_BITS = 1, X_MAX = (1 << X_BITS) - 1, ACC_BITS = 32, V_BITS = 64, F = 0, T = 1,
    parameter integer LIF_LANES = P, ULTRA = 0,
    parameter ROM_FILE = "weights.mem", CHARGE_FILE = "charge.mem", FIRE_FILE = "fire.mem", NEG_FILE = "neg.mem",
    parameter integer ROM_TAIL = 0, parameter ROM_TAIL_FILE = "weights_tail.mem", parameter integer LIST_LUTRAM = 1,
    parameter integer MUL_TREE = 1,
    // REQUANT 1 (hqflow_stream_wbn.v): in place of the LIF unit the requantization unit (hqflow_requant_unit.v,
    // the same timing), words of T OUT_BITS-bit values out; the V_BITS, F and LIF table parameters unused
    parameter integer REQUANT = 0, OUT_BITS = 1, SHIFT = 0, parameter REQ_FILE = "requant.mem"
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              s_tvalid,
    output wire              s_tready,
    input  wire [T*X_BITS-1:0] s_tdata,
    output wire              m_tvalid,
    input  wire              m_tready,
    output wire [T*(REQUANT ? OUT_BITS : 1)-1:0] m_tdata,
    output wire              m_tlast,
    output wire              active
);
    localparam integer HO = H + 2 * PAD - K + 1;
    localparam integer WO = W + 2 * PAD - K + 1;
    localparam integer R = K * K * C;
    localparam integer EB = T * X_BITS;
    localparam integer G = (O + P - 1) / P;
    localparam integer RW = P * BITS;
    localparam integer ROM_DEPTH = R * G;
    localparam integer RA = ROM_DEPTH > 1 ? $clog2(ROM_DEPTH) : 1;
    localparam integer GA = G > 1 ? $clog2(G) : 1;
    localparam integer AB = (W * C > 1) ? $clog2(W * C) : 1;
    localparam integer XB = (W > 1) ? $clog2(W) : 1;
    localparam integer CB = (C > 1) ? $clog2(C) : 1;
    localparam integer KB = (K > 1) ? $clog2(K) : 1;
    localparam integer M_I = K * G * C;             // ROM lines from window row i to i + 1
    localparam integer CNB = $clog2(C + 1);         // a pixel's count of nonzero elements: 0 .. C
    localparam integer NB = $clog2(P + 1);
    localparam integer L = LIF_LANES;
    localparam integer M = P / LIF_LANES;
    localparam integer TA = G * M > 1 ? $clog2(G * M) : 1;
    // counter widths: each the bits of its range (no 32-bit loop counters: they cost LUTs and FFs)
    localparam integer XOB = WO > 1 ? $clog2(WO) : 1;                  // xo: 0 .. WO - 1
    localparam integer JRB = $clog2(K * G * C + 1);                    // j_row: 0 .. ((K - 1) G + G - 1) C
    localparam integer XIB = $clog2(W + 2 * PAD + 1) + 1;              // xi (signed): -PAD .. W + PAD
    localparam integer COB = $clog2((W + 2 * PAD + 1) * C + 1) + 1;    // col, xbase (signed): xi * C
    localparam integer TB = $clog2(T + 1);                             // t: 0 .. T - 1
    localparam integer MB = M > 1 ? $clog2(M) : 1;                     // k: 0 .. M - 1

    initial begin
        if (P < 1) $error("hqflow_stream_wlif: P %0d lanes", P);
        if (LIF_LANES < 1 || P % LIF_LANES != 0) $error("hqflow_stream_wlif: LIF_LANES %0d must divide P %0d", LIF_LANES, P);
        if (HO < 1 || WO < 1) $error("hqflow_stream_wlif: no output for H %0d W %0d K %0d PAD %0d", H, W, K, PAD);
    end

    localparam [3:0] S_ROW = 4'd0, S_ACC = 4'd1, S_DRAIN = 4'd2, S_FLUSH = 4'd3, S_HAND = 4'd4, S_MASK = 4'd5,
                     S_LOAD = 4'd6, S_COUNT = 4'd7;
    reg [3:0] state;
    // multi-bit inputs that are not selects: the products take MUL_LAT more cycles (hqflow_lanes_piped)
    localparam integer MUL_LAT = X_BITS > 1 && !(X_BITS == 2 && X_MAX <= 2) ? 1 + ($clog2(X_BITS) + 1) / 2 : 0;
    localparam integer DRAIN = 2 + MUL_LAT;     // the drain's cycles: the last element's reads and products
    reg [$clog2(DRAIN + 1)-1:0] drain;

    // ---- the line buffer ------------------------------------------------------------------------
    wire row_ok;
    wire [K-1:0] row_live;              // rows of the window inside the image (a register of the window)
    wire last_row;
    wire [K*EB-1:0] rows;
    reg  rd_en;                         // (the element reads: combinational from the pick)
    reg  [AB-1:0] rd_addr;
    reg  next_row;
    reg  m_rd_en;
    reg  [XB-1:0] m_rd_addr;
    wire [K*CNB-1:0] counts;
    reg  l_rd_en;
    reg  [AB-1:0] l_rd_addr;
    wire [K*CB-1:0] entries;
    hqflow_window #(.H(H), .W(W), .C(C), .K(K), .S(1), .PAD(PAD), .EB(EB), .LIST(1), .LIST_LUTRAM(LIST_LUTRAM),
                    .ULTRA(ULTRA)) window (
        .clk(clk), .rst(rst), .s_tvalid(s_tvalid), .s_tready(s_tready), .s_tdata(s_tdata),
        .row_ok(row_ok), .next_row(next_row), .row_live(row_live), .last_row(last_row),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_rows(rows), .m_rd_en(m_rd_en), .m_rd_addr(m_rd_addr),
        .m_counts(counts), .l_rd_en(l_rd_en), .l_rd_addr(l_rd_addr), .l_rows(entries));

    // ---- loop counters (running offsets; constant products as shifts and adds: no multiplier) ----
    reg [XOB-1:0] xo;                   // the output pixel of the row
    reg [GA-1:0] g;                     // the lane group
    reg [KB-1:0] j;                     // the window column
    reg [JRB-1:0] j_row;                // (j G + g) C: the ROM lines of the column and group
    reg [JRB-1:0] g_c;                  // g C
    reg signed [XIB-1:0] xi;            // the column's input x
    reg signed [COB-1:0] col;           // xi * C
    reg signed [COB-1:0] xbase;         // (xo - PAD) * C
    reg col_ok;                         // xi >= 0 && xi < W (set in MASK)

    // The column's nonzero elements, row by row: `rows_left` the rows after the current one that have
    // some, `cur_i` the current row, `rem` its elements after the current one, `l_ptr` the current
    // element's list entry x*C + e. The list read of an element is issued the cycle before its pick.
    // Pipeline of an element (cycle n: S_ACC picks it, its channel just out of the list RAM):
    //   n      the pick (i, c) -> p_* registers; the next element's list read
    //   n + 1  read addresses p_col + p_c (line buffer), p_base + p_jg + p_c (ROM)
    //   n + 2  the element (its row's) and the P codes out of the RAMs -> registers
    //   n + 3  products -> acc (or, handing over, the sums to the LIF unit)
    // COUNT registers, per row i of the column, from the counts read (none in the padding): whether it has
    // elements (c_nz), its count - 1 (c_m1: bits [i*CNB, +CNB)) and whether that is more than one (c_gt1)
    reg  [K-1:0] c_nz, c_gt1;
    reg  [K*CNB-1:0] c_m1;
    reg  [K-1:0] rows_left;
    reg  [KB-1:0] cur_i;
    reg  [CNB-1:0] rem;
    reg  [AB-1:0] l_ptr;
    // LOAD: the first row with elements; ACC: the next (the lowest of rows_left); with their c_m1 and
    // c_gt1 (constant part-selects: no index arithmetic)
    reg  [KB-1:0] load_i, next_i;
    reg  [CNB-1:0] load_m1, next_m1;
    reg  load_gt1, next_gt1;
    integer li;
    always @* begin
        load_i = 0; next_i = 0; load_m1 = 0; next_m1 = 0; load_gt1 = 0; next_gt1 = 0;
        for (li = K - 1; li >= 0; li = li - 1) begin
            if (c_nz[li]) begin load_i = li; load_m1 = c_m1[li*CNB +: CNB]; load_gt1 = c_gt1[li]; end
            if (rows_left[li]) begin next_i = li; next_m1 = c_m1[li*CNB +: CNB]; next_gt1 = c_gt1[li]; end
        end
    end
    reg  in_row;                        // rem != 0: the current row has more elements (set with rem)
    reg  [AB-1:0] l_inc;                // l_ptr + 1 (set with l_ptr)
    wire last_pick = !in_row && rows_left == 0;
    reg  [CB-1:0] pick_c;               // the current element's channel: row cur_i's list entry
    integer lr;
    always @* begin
        pick_c = entries[CB-1:0];
        for (lr = 1; lr < K; lr = lr + 1) if (cur_i == lr) pick_c = entries[lr*CB +: CB];
    end
    // the list reads: LOAD the columns' first entries; ACC the next element's (the next in the row, or
    // the first of the next row with elements)
    always @* begin
        l_rd_en = state == S_LOAD || (state == S_ACC && !last_pick);
        l_rd_addr = state == S_ACC && in_row ? l_inc : col[AB-1:0];
    end
    reg p_valid;                        // the pick stage's registers (cycle n + 1)
    reg [KB-1:0] p_i;
    reg [CB-1:0] p_c;
    reg [RA-1:0] p_base, p_jg;          // i M_I (a table of the K values); (j G + g) C
    reg signed [COB-1:0] p_col;         // its column's element offset xi * C
    reg [RA-1:0] i_base;
    integer fv;
    always @* begin
        i_base = 0;
        for (fv = 1; fv < K; fv = fv + 1) if (cur_i == fv) i_base = fv * M_I;
    end

    // ---- ROM, lanes, accumulators ------------------------------------------------------------------
    // (C a power of two: p_col, p_base and p_jg are multiples of C, the channel their low bits: no add for it)
    localparam integer POW2C = C > 1 && (C & (C - 1)) == 0 && AB > CB && RA > CB;
    wire [RA-1:0] rom_addr;
    wire [AB-1:0] rd_at;                // the line buffer's read address p_col + p_c
    generate
        if (POW2C) begin : pow2
            wire [RA-CB-1:0] rom_hi = p_base[RA-1:CB] + p_jg[RA-1:CB];
            assign rom_addr = {rom_hi, p_c};
            assign rd_at = {p_col[AB-1:CB], p_c};
        end else begin : any_c
            assign rom_addr = p_base + p_jg + p_c;
            assign rd_at = p_col + p_c;
        end
    endgenerate
    wire [P*BITS-1:0] codes;            // the group's P codes: one ROM line
    hqflow_weight_rom #(.WIDTH(RW), .DEPTH(ROM_DEPTH), .AW(RA), .FILE(ROM_FILE), .TAIL(ROM_TAIL),
                        .TAIL_FILE(ROM_TAIL_FILE)) rom (.clk(clk), .addr(rom_addr), .q(codes));
    wire issue = state == S_ACC;
    always @* begin rd_en = p_valid; rd_addr = rd_at; end

    reg d_valid;                        // the data stage: the read issued one cycle before (n + 2)
    reg [KB-1:0] d_i;
    reg [EB-1:0] d_row;                 // row d_i's element (constant part-selects: no index multiplier)
    integer xr;
    always @* begin
        d_row = rows[EB-1:0];
        for (xr = 1; xr < K; xr = xr + 1) if (d_i == xr) d_row = rows[xr*EB +: EB];
    end
    reg [MUL_LAT:0] m_valid;            // bit 0: e_valid; bit MUL_LAT: the products landing
    reg e_valid;                        // the product stage (n + 3): the element and its codes, registered
    reg [EB-1:0] x_row;
    reg [P*BITS-1:0] e_codes;
    reg [P-1:0] live;                   // the lanes of the group, with an element landing (else every product 0)
    always @(posedge clk) begin x_row <= d_row; e_codes <= codes; live <= live_l(g) & {P{d_valid}}; end
    reg [T*P*ACC_BITS-1:0] acc;         // step t, lane p: bits [(t*P + p)*ACC_BITS, +ACC_BITS)
    wire [T*P*ACC_BITS-1:0] prods;
    genvar tt;
    generate
        if (X_BITS == 1) begin : spikes_in     // decode each lane's weight once; a spike of step t passes it
            wire [P*ACC_BITS-1:0] w_eff;
            hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(1),
                           .ACC_BITS(ACC_BITS)) decode (.codes(e_codes), .live(live), .x(1'b1), .prods(w_eff));
            for (tt = 0; tt < T; tt = tt + 1) begin : step
                assign prods[tt*P*ACC_BITS +: P*ACC_BITS] = x_row[tt] ? w_eff : {P*ACC_BITS{1'b0}};
            end
        end else if (X_BITS == 2 && X_MAX <= 2) begin : select_in  // x in {0, 1, 2} (a sum of two spikes):
            wire [P*ACC_BITS-1:0] w_eff;       // decode once; each step selects 0, w_eff or 2 w_eff
            hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(1),
                           .ACC_BITS(ACC_BITS)) decode (.codes(e_codes), .live(live), .x(1'b1), .prods(w_eff));
            genvar sp;
            for (tt = 0; tt < T; tt = tt + 1) begin : step
                for (sp = 0; sp < P; sp = sp + 1) begin : lane
                    wire [ACC_BITS-1:0] w = w_eff[sp*ACC_BITS +: ACC_BITS];
                    assign prods[(tt*P + sp)*ACC_BITS +: ACC_BITS] = x_row[tt*2 + 1] ? w << 1 : x_row[tt*2] ? w : {ACC_BITS{1'b0}};
                end
            end
        end else begin : values_in             // multi-bit inputs: P products per step, MUL_LAT cycles
            for (tt = 0; tt < T; tt = tt + 1) begin : step
                hqflow_lanes_piped #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP),
                                     .X_BITS(X_BITS), .ACC_BITS(ACC_BITS), .MUL_TREE(MUL_TREE)) lanes (
                    .clk(clk), .codes(e_codes), .live(live), .x(x_row[tt*X_BITS +: X_BITS]),
                    .prods(prods[tt*P*ACC_BITS +: P*ACC_BITS]));
            end
        end
    endgenerate

    // ---- the LIF unit's side (hqflow_lif_unit.v, below) ---------------------------------------------
    reg [TA-1:0] tab_base;              // g * M: the accumulating group's first table line
    reg l_lastg, l_last;                // the LIF unit's group is the pixel's last; the image's last
    localparam integer WORD = T * (REQUANT ? OUT_BITS : 1);  // an output element's bits
    wire lif_ready, lif_done;
    wire [P*WORD-1:0] lif_words;

    // ---- the output bank ---------------------------------------------------------------------------
    reg [P*WORD-1:0] bank;
    reg [NB-1:0] bank_n;
    reg bank_last;
    assign m_tvalid = bank_n != 0;
    assign m_tdata = bank[WORD-1:0];
    assign m_tlast = bank_last && bank_n == 1;
    wire last_px = xo == WO - 1;
    // (waiting for the LIF unit counts while it computes, not while it hands its words to the output bank:
    // that waits for the bank, an output stall)
    assign active = state == S_MASK || state == S_COUNT || state == S_LOAD || state == S_ACC || state == S_DRAIN
                    || ((state == S_HAND || state == S_FLUSH) && !lif_done)
                    || (state == S_ROW && row_ok && !next_row);

    // the accumulators: the group's last product lands in its first S_HAND cycle; in the cycle after
    // (hand_d, a register: it drives every accumulator bit) the LIF unit takes them and they clear (a
    // synchronous reset, no logic per bit; the next group's first product is at least five cycles away)
    reg hand_d;
    reg [TA-1:0] hand_line;             // the group's first table line, for the LIF unit's take
    wire lif_free = lif_ready && !hand_d;   // (the unit's ready falls as it takes)
    wire hand_go = state == S_HAND && lif_free;
    reg [T*P*ACC_BITS-1:0] sums;        // acc + the products landing (0 but those of a live lane's element)
    integer q;
    always @* for (q = 0; q < T * P; q = q + 1)
        sums[q*ACC_BITS +: ACC_BITS] = acc[q*ACC_BITS +: ACC_BITS] + prods[q*ACC_BITS +: ACC_BITS];
    always @(posedge clk) begin
        hand_d <= hand_go && !rst;
        if (hand_go) hand_line <= tab_base;
        if (rst || hand_d) acc <= 0;
        else acc <= sums;
    end

    // ---- the LIF unit (hqflow_lif_unit.v): the group handed over, L = LIF_LANES lanes a cycle ---------
    wire words_taken = lif_done && bank_n == 0;
    generate
        if (REQUANT) begin : requant
            hqflow_requant_unit #(.P(P), .LANES(L), .T(T), .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT),
                                  .LINES(G * M), .REQ_FILE(REQ_FILE)) unit (
                .clk(clk), .rst(rst), .take(hand_d), .sums(acc), .line(hand_line), .ready(lif_ready),
                .done(lif_done), .words_taken(words_taken), .words(lif_words));
        end else begin : lif
            hqflow_lif_unit #(.P(P), .LIF_LANES(L), .T(T), .ACC_BITS(ACC_BITS), .V_BITS(V_BITS), .F(F), .LINES(G * M),
                              .CHARGE_FILE(CHARGE_FILE), .FIRE_FILE(FIRE_FILE), .NEG_FILE(NEG_FILE)) unit (
                .clk(clk), .rst(rst), .take(hand_d), .sums(acc), .line(hand_line), .ready(lif_ready),
                .done(lif_done), .words_taken(words_taken), .words(lif_words));
        end
    endgenerate

    integer ri;
    always @(posedge clk) begin
        next_row <= 0;
        m_rd_en <= 0;
        p_valid <= issue;                   // the pick (n) -> its reads (n + 1) -> the data (n + 2)
        p_i <= cur_i; p_c <= pick_c; p_base <= i_base; p_jg <= j_row; p_col <= col;
        d_valid <= p_valid;
        d_i <= p_i;
        e_valid <= d_valid;
        m_valid <= {m_valid, d_valid};
        if (m_tvalid && m_tready) begin
            bank <= bank >> WORD;
            bank_n <= bank_n - 1'b1;
        end
        case (state)
            S_ROW: if (row_ok && !next_row) begin   // (next_row: the window moves at this edge)
                xo <= 0; g <= 0; g_c <= 0; tab_base <= 0;
                xbase <= -PAD * C;
                state <= S_MASK;
                start_column(0, -PAD, -PAD * C, 0);
            end
            S_MASK: begin state <= S_COUNT; col_ok <= xi >= 0 && xi < W; end   // the counts are read
            S_COUNT: begin
                for (ri = 0; ri < K; ri = ri + 1) begin : count_row
                    reg [CNB-1:0] n_i;
                    n_i = col_ok && row_live[ri] ? counts[ri*CNB +: CNB] : {CNB{1'b0}};
                    c_nz[ri] <= n_i != 0; c_gt1[ri] <= n_i > 1; c_m1[ri*CNB +: CNB] <= n_i - 1'b1;
                end
                state <= S_LOAD;
            end
            S_LOAD: begin                     // (the first entries' list read goes out)
                l_ptr <= col[AB-1:0]; l_inc <= col[AB-1:0] + 1'b1;
                cur_i <= load_i;
                rem <= load_m1; in_row <= load_gt1;
                rows_left <= c_nz & ~(1 << load_i);
                if (c_nz != 0) state <= S_ACC;
                else next_column;
            end
            S_ACC: begin                      // pick the current element; the next one's entry is read
                if (in_row) begin
                    rem <= rem - 1'b1; in_row <= rem > 1; l_ptr <= l_inc; l_inc <= l_inc + 1'b1;
                end else begin
                    cur_i <= next_i; rem <= next_m1; in_row <= next_gt1;
                    l_ptr <= col[AB-1:0]; l_inc <= col[AB-1:0] + 1'b1;
                    rows_left <= rows_left & ~(1 << next_i);
                end
                if (last_pick) next_column;
            end
            S_DRAIN: if (drain == 0) state <= S_HAND; else drain <= drain - 1'b1;
            S_FLUSH: if (lif_free) begin next_row <= 1; state <= S_ROW; end
            default: if (lif_free) begin    // S_HAND: the sums to the LIF unit (in the cycle after)
                l_lastg <= g == G - 1; l_last <= g == G - 1 && last_px && last_row;
                if (g != G - 1) begin       // the next lane group of this pixel
                    g <= g + 1; g_c <= g_c + C; tab_base <= tab_base + M;
                    state <= S_MASK;
                    start_column(0, xo - PAD, xbase, g_c + C);
                end else begin
                    g <= 0; g_c <= 0; tab_base <= 0;
                    if (!last_px) begin     // the next pixel of this row
                        xo <= xo + 1; xbase <= xbase + C;
                        state <= S_MASK;
                        start_column(0, xo + 1 - PAD, xbase + C, 0);
                    end else state <= S_FLUSH;  // the row is done once its last group's LIF is
                end
            end
        endcase
        if (words_taken) begin                  // the group's P spike words to the output bank
            bank <= lif_words;
            bank_n <= l_lastg ? O - (G - 1) * P : P;
            bank_last <= l_last;
        end
        if (rst) begin
            state <= S_ROW; bank_n <= 0; bank_last <= 0; d_valid <= 0; e_valid <= 0; m_valid <= 0; p_valid <= 0; m_rd_en <= 0;
            next_row <= 0;
        end
    end
    // column j of the window at input x = x_in (its element offset x_in * C = col_in) for the group whose
    // g C is gc_in: read its counts
    task start_column(input [KB-1:0] j_in, input signed [XIB-1:0] x_in, input signed [COB-1:0] col_in,
                      input [JRB-1:0] gc_in);
        begin
            j <= j_in; j_row <= times(j_in, G * C) + gc_in; xi <= x_in; col <= col_in;
            m_rd_en <= 1; m_rd_addr <= x_in;
        end
    endtask

    // after column j: the next column, or the group's products are all issued
    task next_column;
        begin
            if (j != K - 1) begin
                state <= S_MASK;
                start_column(j + 1, xi + 1, col + C, g_c);
            end else begin state <= S_DRAIN; drain <= DRAIN - 1; end
        end
    endtask

    // v * M for a constant M, as shifts and adds (no multiplier cell for synthesis to map to a DSP)
    function [31:0] times(input [31:0] v, input integer m);
        integer b;
        begin
            times = 0;
            for (b = 0; b < 31; b = b + 1) if ((m >> b) & 1) times = times + (v << b);
        end
    endfunction

    // lane k of group grp is output grp*P + k < O: only the last group has dead lanes
    function [P-1:0] live_l(input [31:0] grp);
        integer k;
        for (k = 0; k < P; k = k + 1) live_l[k] = grp != G - 1 || k < O - (G - 1) * P;
    endfunction

    initial begin state = S_ROW; bank_n = 0; bank_last = 0; d_valid = 0; e_valid = 0; m_valid = 0; live = 0; p_valid = 0; m_rd_en = 0; next_row = 0; acc = 0; end
endmodule
