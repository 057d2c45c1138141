// hqflow_window: the line buffer of a streaming window core (time-batched architecture).
//
// The input is a stream of elements in pixel-major, channels-last order ((y*W + x)*C + c), one
// element a beat, EB bits each (all T steps of one value: EB = T * value bits). The buffer keeps
// SLOTS = K + S rows of W*C elements, one RAM bank per row slot (row y lives in slot y mod SLOTS),
// so that the consumer reads the K rows of its window in one cycle and the next rows stream in while
// it works (S rows ahead). The consumer works output row by output row yo, whose window's first input
// row is top_row = yo*S - PAD (negative at the top: rows outside 0..H-1 are the consumer's zero padding):
//   row_live  = bit i: row top_row + i is inside the image (0 <= top_row + i < H); a register, from a
//               table of yo;
//   last_row  = yo is the last output row (a register);
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
// list is narrow: block RAM would hold a few hundred bits of it); 0: the lists and the row banks in block
// RAM, the counts the tool's choice (for LUT4 parts, whose LUT RAM is 16 words deep: a list or a row there is
// a multiplexer of many after the read address, where a block RAM registers the address itself).
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
    output wire [K-1:0]          row_live,
    output wire                  last_row,
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
        if ((HO - 1) * S - PAD + K < H)     // (rows no window reads would be left in the buffer at the restart)
            $error("hqflow_window: rows %0d .. %0d are in no window (K %0d S %0d PAD %0d)", (HO - 1) * S - PAD + K, H - 1, K, S, PAD);
    end

    localparam integer YB = HO > 1 ? $clog2(HO) : 1;

    reg [AB-1:0]  in_off;               // the next element within its row
    reg [SB-1:0]  in_slot;              // its slot
    reg           off_last;             // in_off == ROW - 1
    reg [YB-1:0]  yo;
    reg           yo_last;              // yo == HO - 1
    reg [SB-1:0]  top_slot;
    reg [K-1:0]   live;                 // row_live
    assign row_live = live;
    assign last_row = yo_last;

    // The handshakes from registers, with no compare: with r the rows of this image complete,
    //   s_tready = r < limh(yo)    limh(y) = min(H, max(0, y S - PAD) + SLOTS): the rows taken stay below it
    //   row_ok   = r >= need(yo)   need(y) = min(y S - PAD + K, H): the rows the window needs
    // are kept as the differences a = limh(yo) - r and u = r - need(yo), and their values once the window
    // moves, aa = limh(yo + 1) - r and ua = r - need(yo + 1), each a thermometer code (bit j: value > j;
    // u and ua offset by UOFF to be >= 0). A row completing shifts every code by one; the window moving
    // loads a <- aa, u <- ua and shifts aa up and ua down by limh or need's step to the next row (dl, dn:
    // one-hot, 0 .. S, from a table of yo). Every next bit is a multiplexer of neighbouring bits. The
    // protocol keeps r in need(yo - 1) .. limh(yo) (the consumer moves only when row_ok), so
    //   a, aa in 0 .. NA = max(K, S + PAD) + 2 S,   u, ua in -UOFF .. PAD + S, UOFF = K + 2 S
    // (tests/test_rtl_stream.py checks these bounds over a grid of geometries).
    localparam integer NA = (K > S + PAD ? K : S + PAD) + 2 * S;
    localparam integer UOFF = K + 2 * S;
    localparam integer NU = UOFF + PAD + S;
    reg [NA-1:0] ta, taa;
    reg [NU-1:0] tu, tua;
    reg [S:0] dl, dn;                   // one-hot: limh(yo + 2) - limh(yo + 1), need(yo + 2) - need(yo + 1)
    reg [S:0] dl_at, dn_at;             // the same for yo + 1: loaded as the window moves
    reg [K-1:0] live_at;                // row_live of yo + 1
    integer y;
    always @* begin                     // (tables of yo: each entry a constant)
        dl_at = 0; dn_at = 0; live_at = 0;
        for (y = 0; y < HO; y = y + 1)
            if (yo == y) begin
                dl_at[limh(y + 3) - limh(y + 2)] = 1'b1;
                dn_at[need(y + 3) - need(y + 2)] = 1'b1;
                live_at = live_of(y + 1);
            end
    end
    wire take = s_tvalid && s_tready;
    wire restart = next_row && yo_last;
    wire inc = take && off_last;        // a row completes
    wire [NA-1:0] aa_in = inc ? taa >> 1 : taa;                 // aa - inc
    reg  [NA-1:0] aa_up;                // aa - inc + dl
    reg  [NU-1:0] ua_dn;                // ua - dn
    integer k;
    always @* begin
        aa_up = 0; ua_dn = 0;
        for (k = 0; k <= S; k = k + 1) begin
            if (dl[k]) aa_up = aa_up | (aa_in << k) | ((1 << k) - 1);
            if (dn[k]) ua_dn = ua_dn | (tua >> k);
        end
    end
    always @(posedge clk) begin
        if (rst || restart) begin
            ta <= therm_a(limh(0)); taa <= therm_a(limh(1));
            tu <= therm_u(UOFF - need(0)); tua <= therm_u(UOFF - need(1));
            dl <= onehot(limh(2) - limh(1)); dn <= onehot(need(2) - need(1));
        end else if (next_row) begin
            ta <= aa_in; taa <= aa_up; tu <= up_u(tua, inc); tua <= up_u(ua_dn, inc); dl <= dl_at; dn <= dn_at;
        end else begin
            ta <= inc ? ta >> 1 : ta; taa <= aa_in; tu <= up_u(tu, inc); tua <= up_u(tua, inc);
        end
    end
    assign s_tready = ta[0];
    assign row_ok = tu[UOFF-1];

    always @(posedge clk) begin
        if (rst) begin
            in_off <= 0; off_last <= ROW == 1; in_slot <= 0;
            yo <= 0; yo_last <= HO == 1; live <= live_of(0); top_slot <= TOP_SLOT0;
        end else begin
            if (take) begin
                if (off_last) begin
                    in_off <= 0; off_last <= ROW == 1;
                    in_slot <= in_slot == SLOTS - 1 ? 0 : in_slot + 1'b1;
                end else begin
                    in_off <= in_off + 1'b1; off_last <= in_off == ROW - 2;
                end
            end
            if (next_row) begin
                if (yo_last) begin              // the image is done (all its rows were in): start over
                    yo <= 0; yo_last <= HO == 1; live <= live_of(0); top_slot <= TOP_SLOT0;
                    in_off <= 0; off_last <= ROW == 1; in_slot <= 0;
                end else begin
                    yo <= yo + 1; yo_last <= yo == HO - 2;
                    live <= live_at;
                    top_slot <= top_slot + S >= SLOTS ? top_slot + S - SLOTS : top_slot + S;
                end
            end
        end
    end

    function integer limh(input integer yy);
        begin
            limh = (yy * S - PAD < 0 ? 0 : yy * S - PAD) + SLOTS;
            if (limh > H) limh = H;
        end
    endfunction
    function [K-1:0] live_of(input integer yy);    // rows yy S - PAD + i inside the image
        integer i;
        for (i = 0; i < K; i = i + 1) live_of[i] = yy * S - PAD + i >= 0 && yy * S - PAD + i < H;
    endfunction
    function integer need(input integer yy);
        need = yy * S - PAD + K > H ? H : yy * S - PAD + K;
    endfunction
    function [NA-1:0] therm_a(input integer v);         // v ones from bit 0
        integer j;
        for (j = 0; j < NA; j = j + 1) therm_a[j] = v > j;
    endfunction
    function [NU-1:0] therm_u(input integer v);
        integer j;
        for (j = 0; j < NU; j = j + 1) therm_u[j] = v > j;
    endfunction
    function [S:0] onehot(input integer v);
        begin onehot = 0; onehot[v] = 1'b1; end
    endfunction
    function [NU-1:0] up_u(input [NU-1:0] t, input up);  // t + up, a thermometer
        up_u = up ? {t[NU-2:0], 1'b1} : t;
    endfunction

    // the row banks; the slot rotation of a read is the one at its issue
    wire [SLOTS*EB-1:0] bank_q;
    genvar b;
    generate
        for (b = 0; b < SLOTS; b = b + 1) begin : bank
            hqflow_ram #(.WIDTH(EB), .DEPTH(ROW), .ADDR_BITS(AB), .ULTRA(ULTRA), .BLOCK(LIST != 0 && LIST_LUTRAM == 0)) ram (
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
            reg [NB-1:0] in_n1;             // in_n + 1 (the count written with a nonzero last element: no add)
            reg [AB:0] l_wptr;              // x*C + in_n: the list entry of the next nonzero element
            reg [AB:0] px_next;             // (x + 1)*C: the next pixel's first entry
            wire nz = |s_tdata;
            wire px_end = in_c == C - 1;
            always @(posedge clk) begin
                if (take) begin
                    if (px_end) begin
                        in_c <= 0; in_n <= 0; in_n1 <= 1;
                        if (in_x == W - 1) begin in_x <= 0; l_wptr <= 0; px_next <= C; end
                        else begin in_x <= in_x + 1'b1; l_wptr <= px_next; px_next <= px_next + C; end
                    end else begin
                        in_c <= in_c + 1'b1;
                        if (nz) begin in_n <= in_n1; in_n1 <= in_n1 + 1'b1; l_wptr <= l_wptr + 1'b1; end
                    end
                end
                if (rst || restart) begin
                    in_c <= 0; in_x <= 0; in_n <= 0; in_n1 <= 1; l_wptr <= 0; px_next <= C;
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
                    .clk(clk), .we(take && px_end && in_slot == b), .waddr(in_x), .wdata(nz ? in_n1 : in_n),
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
