// hqflow_window: the line buffer of a streaming window core (time-batched architecture).
//
// The input is a stream of elements in pixel-major, channels-last order ((y*W + x)*C + c), one
// element a beat, EB bits each (all T steps of one value: EB = T * value bits). The buffer keeps
// SLOTS = K + S rows of W*C elements, one RAM bank per row slot (row y lives in slot y mod SLOTS),
// so that the consumer reads the K rows of its window in one cycle and the next rows stream in while
// it works (S rows ahead). The consumer works output row by output row:
//   top_row   = yo*S - PAD: the window's first input row for output row yo (negative at the top:
//               rows outside 0..H-1 are the consumer's zero padding);
//   row_ok    = the rows top_row .. top_row + K - 1 that exist have arrived;
//   next_row  = a one-cycle pulse when the consumer is done with output row yo (after the last one,
//               the buffer starts over with the next image's rows).
// The input is taken (s_tready) while its row is within SLOTS rows of the lowest row still needed
// (max(0, top_row)) and belongs to this image.
// Read port: rd_addr = x*C + c (an element of a row), rd_en; one cycle later rd_rows holds the element
// of rows top_row + i, i = 0..K-1, in bits [i*EB, (i+1)*EB) (held while rd_en is low).
// With LIST = 1 the buffer also keeps, per pixel of each row, the list of its nonzero elements (nonzero
// at some step): their channels c, ascending, at x*C .. x*C + n - 1 of the row slot's list bank, and
// n (0 .. C) at x of its count bank, written as the elements arrive (the count with the pixel's last
// channel). Reads: m_rd_addr = x -> one cycle after m_rd_en, m_counts bits [i*NB, (i+1)*NB) hold row
// top_row + i's count; l_rd_addr = x*C + e -> one cycle after l_rd_en, l_rows bits [i*CB, (i+1)*CB)
// hold entry e of row top_row + i's list (the consumer visits only the nonzero elements: event-driven
// at the word level, with no per-channel logic: a count, a pointer and a small RAM a row).
// Parameters: H, W, C the input, K the window, S the stride, PAD the zero padding, EB element bits,
// ULTRA 1: the row banks in UltraRAM (hqflow_ram.v); LIST_LUTRAM 1: the lists and counts in LUT RAM (a
// list is narrow: block RAM would hold a few hundred bits of it); 0: the lists in block RAM, the counts the
// tool's choice (for LUT4 parts, whose LUT RAM is 16 words deep: a list there is a multiplexer of many).
module hqflow_window #(
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer C = 1,
    parameter integer K = 3,
    parameter integer S = 1,
    parameter integer PAD = 1,
    parameter integer EB = 1,
    parameter integer LIST = 0,
    parameter integer LIST_LUTRAM = 1,
    parameter integer ULTRA = 0,
    parameter integer AB = (W * C > 1) ? $clog2(W * C) : 1,
    parameter integer XB = (W > 1) ? $clog2(W) : 1,
    parameter integer CB = (C > 1) ? $clog2(C) : 1,
    parameter integer NB = $clog2(C + 1)
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  s_tvalid,
    output wire                  s_tready,
    input  wire [EB-1:0]         s_tdata,
    output wire                  row_ok,
    input  wire                  next_row,
    output reg  signed [31:0]    top_row,
    input  wire                  rd_en,
    input  wire [AB-1:0]         rd_addr,
    output reg  [K*EB-1:0]       rd_rows,
    input  wire                  m_rd_en,
    input  wire [XB-1:0]         m_rd_addr,
    output reg  [K*NB-1:0]       m_counts,
    input  wire                  l_rd_en,
    input  wire [AB-1:0]         l_rd_addr,
    output reg  [K*CB-1:0]       l_rows
);
    localparam integer SLOTS = K + S;
    localparam integer ROW = W * C;
    localparam integer HO = (H + 2 * PAD - K) / S + 1;
    localparam integer SB = $clog2(SLOTS + 1);
    localparam integer TOP_SLOT0 = (SLOTS - PAD % SLOTS) % SLOTS;   // slot of row -PAD

    initial begin
        if (K < 1 || S < 1 || PAD < 0 || PAD >= K || H < 1 || W < 1 || C < 1)
            $error("hqflow_window: bad geometry H %0d W %0d C %0d K %0d S %0d PAD %0d", H, W, C, K, S, PAD);
    end

    localparam integer RB = $clog2(H + SLOTS + 1) + 1;  // signed row numbers: -PAD .. H + SLOTS
    localparam integer YB = HO > 1 ? $clog2(HO) : 1;

    reg [RB-1:0]  in_row;               // rows of this image complete (0 .. H)
    reg [AB-1:0]  in_off;               // the next element within its row
    reg [SB-1:0]  in_slot;              // its slot
    reg [YB-1:0]  yo;
    reg [SB-1:0]  top_slot;
    reg signed [RB-1:0] top;            // top_row in its own width (the port is 32 bits wide)
    always @* top_row = top;
    // (the row arithmetic in RB bits; the bounds of the current top registered with it: the input's
    // s_tready is two compares of registers)
    localparam signed [RB-1:0] H_R = H, K_R = K, S_R = S, SLOTS_R = SLOTS, TOP0 = -PAD;
    reg signed [RB-1:0] lim;            // max(0, top) + SLOTS: the rows taken stay below it
    reg signed [RB-1:0] need;           // min(top + K, H): the rows the window needs
    wire signed [RB-1:0] in_rows = in_row;
    wire take = s_tvalid && s_tready;
    // s_tready = in_row < H && in_row < lim and row_ok = in_row >= need, registered: the same compares on
    // the next state (in_row, lim and need as the block below updates them), so that the producer's
    // handshake and the consumer's row wait start at a register. Each compare is one carry chain from
    // registers, both outcomes of the cycle's events side by side (in_row or in_row + 1; the limits now,
    // or once the window moves: lim_adv, need_adv), the events selecting among them.
    reg off_last;                       // in_off == ROW - 1
    reg yo_last;                        // yo == HO - 1
    reg signed [RB-1:0] in_row_p1;      // in_row + 1
    reg signed [RB-1:0] lim_adv;        // lim_of(top + S): lim once the window moves
    reg signed [RB-1:0] need_adv;       // need_of(top + S)
    reg signed [RB-1:0] top2, top2_s, top2_k;   // top + 2 S, + SLOTS, + K: the limits after next, one step each
    wire restart = next_row && yo_last;
    wire inc = take && off_last;        // a row completes
    wire ready_now = inc ? in_row_p1 < H_R && in_row_p1 < lim : in_rows < H_R && in_rows < lim;
    wire ready_adv = inc ? in_row_p1 < H_R && in_row_p1 < lim_adv : in_rows < H_R && in_rows < lim_adv;
    wire ok_now = inc ? in_row_p1 >= need : in_rows >= need;
    wire ok_adv = inc ? in_row_p1 >= need_adv : in_rows >= need_adv;
    localparam READY0 = 0 < H_R && 0 < lim_of(TOP0), OK0 = 0 >= need_of(TOP0);   // after a restart: no rows in
    reg ready, ok;
    always @(posedge clk) begin
        ready <= rst || (restart ? READY0 : next_row ? ready_adv : ready_now);
        ok <= !rst && (restart ? OK0 : next_row ? ok_adv : ok_now);
    end
    assign s_tready = ready;
    assign row_ok = ok;

    always @(posedge clk) begin
        if (rst) begin
            in_row <= 0; in_row_p1 <= 1; in_off <= 0; off_last <= ROW == 1; in_slot <= 0;
            yo <= 0; yo_last <= HO == 1; top <= TOP0; top_slot <= TOP_SLOT0;
            lim <= lim_of(TOP0); lim_adv <= lim_of(TOP0 + S_R); need <= need_of(TOP0); need_adv <= need_of(TOP0 + S_R);
            top2 <= TOP0 + 2 * S_R; top2_s <= TOP0 + 2 * S_R + SLOTS_R; top2_k <= TOP0 + 2 * S_R + K_R;
        end else begin
            if (take) begin
                if (off_last) begin
                    in_off <= 0; off_last <= ROW == 1;
                    in_row <= in_row_p1; in_row_p1 <= in_row_p1 + 1'b1;
                    in_slot <= in_slot == SLOTS - 1 ? 0 : in_slot + 1'b1;
                end else begin
                    in_off <= in_off + 1'b1; off_last <= in_off == ROW - 2;
                end
            end
            if (next_row) begin
                if (yo_last) begin              // the image is done (all its rows were in): start over
                    yo <= 0; yo_last <= HO == 1; top <= TOP0; top_slot <= TOP_SLOT0;
                    lim <= lim_of(TOP0); lim_adv <= lim_of(TOP0 + S_R); need <= need_of(TOP0); need_adv <= need_of(TOP0 + S_R);
                    top2 <= TOP0 + 2 * S_R; top2_s <= TOP0 + 2 * S_R + SLOTS_R; top2_k <= TOP0 + 2 * S_R + K_R;
                    in_row <= 0; in_row_p1 <= 1; in_off <= 0; off_last <= ROW == 1; in_slot <= 0;
                end else begin
                    yo <= yo + 1; yo_last <= yo == HO - 2;
                    top <= top + S_R; lim <= lim_adv; need <= need_adv;
                    lim_adv <= top2 < 0 ? SLOTS_R : top2_s;         // lim_of(top + 2 S)
                    need_adv <= top2_k > H_R ? H_R : top2_k;        // need_of(top + 2 S)
                    top2 <= top2 + S_R; top2_s <= top2_s + S_R; top2_k <= top2_k + S_R;
                    top_slot <= top_slot + S >= SLOTS ? top_slot + S - SLOTS : top_slot + S;
                end
            end
        end
    end

    function signed [RB-1:0] lim_of(input signed [RB-1:0] tp);
        lim_of = (tp < 0 ? {RB{1'b0}} : tp) + SLOTS_R;
    endfunction
    function signed [RB-1:0] need_of(input signed [RB-1:0] tp);
        need_of = tp + K_R > H_R ? H_R : tp + K_R;
    endfunction

    // the row banks; the slot rotation of a read is the one at its issue
    wire [SLOTS*EB-1:0] bank_q;
    genvar b;
    generate
        for (b = 0; b < SLOTS; b = b + 1) begin : bank
            hqflow_ram #(.WIDTH(EB), .DEPTH(ROW), .ADDR_BITS(AB), .ULTRA(ULTRA)) ram (
                .clk(clk), .we(take && in_slot == b), .waddr(in_off), .wdata(s_tdata),
                .re(rd_en), .raddr(rd_addr), .rdata(bank_q[b*EB +: EB]));
        end
    endgenerate
    // row i of the window is in slot (top_slot + i) mod SLOTS at the read's issue: one-hot selects
    // (bit i SLOTS + s), registered with the read, then an AND-OR per row
    reg [K*SLOTS-1:0] slot_now, rd_sel;
    integer i, s;
    always @* begin
        slot_now = 0;
        for (i = 0; i < K; i = i + 1)
            for (s = 0; s < SLOTS; s = s + 1)
                slot_now[i*SLOTS + s] = top_slot + i == s || top_slot + i == s + SLOTS;
    end
    always @(posedge clk) if (rd_en) rd_sel <= slot_now;
    always @* begin
        rd_rows = 0;
        for (i = 0; i < K; i = i + 1)
            for (s = 0; s < SLOTS; s = s + 1)   // (constant part-selects: a multiplexer, no index multiplier)
                rd_rows[i*EB +: EB] = rd_rows[i*EB +: EB] | (bank_q[s*EB +: EB] & {EB{rd_sel[i*SLOTS + s]}});
    end

    // the lists of nonzero elements and their counts, per row slot
    generate
        if (LIST != 0) begin : lists
            reg [CB-1:0] in_c;              // the channel of the next element
            reg [XB-1:0] in_x;              // its pixel
            reg [NB-1:0] in_n;              // the pixel's nonzero elements so far
            reg [AB:0] l_wptr;              // x*C + in_n: the list entry of the next nonzero element
            reg [AB:0] px_next;             // (x + 1)*C: the next pixel's first entry
            wire nz = |s_tdata;
            wire px_end = in_c == C - 1;
            always @(posedge clk) begin
                if (take) begin
                    if (px_end) begin
                        in_c <= 0; in_n <= 0;
                        if (in_x == W - 1) begin in_x <= 0; l_wptr <= 0; px_next <= C; end
                        else begin in_x <= in_x + 1'b1; l_wptr <= px_next; px_next <= px_next + C; end
                    end else begin
                        in_c <= in_c + 1'b1;
                        if (nz) begin in_n <= in_n + 1'b1; l_wptr <= l_wptr + 1'b1; end
                    end
                end
                if (rst || restart) begin
                    in_c <= 0; in_x <= 0; in_n <= 0; l_wptr <= 0; px_next <= C;
                end
            end
            wire [SLOTS*NB-1:0] count_q;
            wire [SLOTS*CB-1:0] list_q;
            reg [K*SLOTS-1:0] m_sel, l_sel;
            always @(posedge clk) begin
                if (m_rd_en) m_sel <= slot_now;
                if (l_rd_en) l_sel <= slot_now;
            end
            for (b = 0; b < SLOTS; b = b + 1) begin : lbank
                hqflow_ram #(.WIDTH(CB), .DEPTH(ROW), .ADDR_BITS(AB), .DISTRIBUTED(LIST_LUTRAM), .BLOCK(!LIST_LUTRAM)) list (
                    .clk(clk), .we(take && nz && in_slot == b), .waddr(l_wptr[AB-1:0]), .wdata(in_c),
                    .re(l_rd_en), .raddr(l_rd_addr), .rdata(list_q[b*CB +: CB]));
                hqflow_ram #(.WIDTH(NB), .DEPTH(W), .ADDR_BITS(XB), .DISTRIBUTED(LIST_LUTRAM)) count (
                    .clk(clk), .we(take && px_end && in_slot == b), .waddr(in_x), .wdata(in_n + nz),
                    .re(m_rd_en), .raddr(m_rd_addr), .rdata(count_q[b*NB +: NB]));
            end
            integer mi, ms;
            always @* begin                 // row i of the window is in slot (slot at the read + i) mod SLOTS
                m_counts = 0; l_rows = 0;
                for (mi = 0; mi < K; mi = mi + 1)
                    for (ms = 0; ms < SLOTS; ms = ms + 1) begin
                        m_counts[mi*NB +: NB] = m_counts[mi*NB +: NB] | (count_q[ms*NB +: NB] & {NB{m_sel[mi*SLOTS + ms]}});
                        l_rows[mi*CB +: CB] = l_rows[mi*CB +: CB] | (list_q[ms*CB +: CB] & {CB{l_sel[mi*SLOTS + ms]}});
                    end
            end
        end else begin : no_lists
            always @* begin m_counts = 0; l_rows = 0; end
        end
    endgenerate
endmodule
